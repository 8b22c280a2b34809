"""WebsocketMapper views under granian's RSGI interface (aiopyramid.rsgi), real clients.

granian frames the connections itself; where it cannot do what the other
servers do (codes in its close frames, subprotocols, a refusal's headers
and body), the tests assert what it does, and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator

import pytest

from tests.harness.servers import (
    UNIT,
    ServerProcess,
    granian,
    import_required,
    require_module,
    wait_until,
    wait_until_async,
)

pytestmark = pytest.mark.server
import_required("websockets")
import_required("granian")
httpx = import_required("httpx")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

TARGET = "tests.apps.websockets:rsgi_app"


@contextlib.contextmanager
def serve(**settings: str) -> Iterator[ServerProcess]:
    """The websocket test app under granian + RSGI, with these settings."""
    require_module("granian")
    env = {"AIOPYRAMID_TEST_WS_SETTINGS": json.dumps(settings)}
    with granian(TARGET, "--factory", env=env) as process:
        yield process


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """The app with a 1 KiB message limit (a setting, as on the worker)."""
    with serve(**{"aiopyramid.websocket.max_size": "1024"}) as process:
        yield process


def run(coroutine):
    """Run a client coroutine with a bounded time."""
    return asyncio.run(asyncio.wait_for(coroutine, 60 * UNIT))


def access_lines(server: ServerProcess, path: str) -> list[str]:
    """The statuses of the access lines of ``path``, in order."""
    pattern = re.compile(rf'"GET {re.escape(path)} HTTP/1.1" (\S+) ')
    return pattern.findall(server.log())


async def refused(url: str, **options) -> int:
    """The status a handshake at ``url`` is refused with."""
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, **options):
            pass
    return refusal.value.response.status_code


def test_echo_text_and_binary(server):
    """Text frames come back as text, binary as binary; views see str or bytes."""

    async def main():
        async with connect(server.ws_url + "/ws/echo") as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
        async with connect(server.ws_url + "/ws/kinds") as ws:
            await ws.send("t")
            assert await ws.recv() == "str"
        async with connect(server.ws_url + "/ws/bytes") as ws:
            await ws.send("t")
            assert await ws.recv() == "bytes"
        async with connect(server.ws_url + "/ws/legacy") as ws:
            await ws.send("old")
            assert await ws.recv() == "old"

    run(main())
    # The client closed: granian answers with its code but does not hand it
    # over, so the line says 1005 (no code known).
    wait_until(lambda: access_lines(server, "/ws/echo")[-2:] == ["101", "1005"])


def test_class_view_callbacks(server):
    """WebsocketConnectionView runs on_open, on_message per message, and on_close."""

    async def main():
        async with connect(server.ws_url + "/ws/counter/ann") as ws:
            assert await ws.recv() == "hello ann"
            await ws.send("x")
            assert await ws.recv() == "1: x"

    run(main())
    wait_until(lambda: "counter" in httpx.get(server.url + "/events").text)


def test_close_frames_carry_no_code(server):
    """granian's close frame is empty whatever the view's code (the client reads
    1005); the access line has the code the view closed with."""

    async def main():
        async with connect(server.ws_url + "/ws/push") as ws:
            messages = [await ws.recv() for _ in range(3)]
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return messages, ws.close_code

    assert run(main()) == (["push 0", "push 1", "push 2"], 1005)
    wait_until(lambda: access_lines(server, "/ws/push")[-1:] == ["4001"])


def test_a_failing_view_closes_with_1011_and_is_logged(server):
    """A view that raises ends its connection (1011 in the access line); the
    error reaches the log."""

    async def main():
        async with connect(server.ws_url + "/ws/fail") as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosed):
                await ws.recv()

    run(main())
    wait_until(lambda: "ValueError: a bug in the view" in server.log())
    wait_until(lambda: access_lines(server, "/ws/fail")[-1:] == ["1011"])


def test_message_over_max_size_closes_with_1009(server):
    """A message over aiopyramid.websocket.max_size ends the connection (1009)."""

    async def main():
        async with connect(server.ws_url + "/ws/echo") as ws:
            await ws.send("x" * 1024)
            assert len(await ws.recv()) == 1024
            await ws.send(b"x" * 1025)
            with pytest.raises(ConnectionClosed):
                await ws.recv()

    run(main())
    wait_until(lambda: access_lines(server, "/ws/echo")[-1:] == ["1009"])


def test_refusals_keep_the_status(server):
    """raise HTTPGone(), a failed permission, a generated refusal: the client
    gets the view's status (granian sends it without headers or body)."""

    async def main():
        return [
            await refused(server.ws_url + "/ws/gone"),
            await refused(server.ws_url + "/ws/secret"),
            await refused(server.ws_url + "/ws/refuse_generator"),
            await refused(server.ws_url + "/ws/refuse_async"),
            await refused(server.ws_url + "/ws/nowhere"),
        ]

    assert run(main()) == [410, 403, 401, 404, 404]
    wait_until(lambda: access_lines(server, "/ws/gone")[-1:] == ["410"])


def test_origin_of_another_site_is_refused(server):
    """A browser handshake from a page of another site gets 403; the site's own
    pages and programs without Origin are let in."""

    async def main():
        status = await refused(server.ws_url + "/ws/echo", origin="http://evil.example")
        own = f"http://127.0.0.1:{server.port}"
        async with connect(server.ws_url + "/ws/echo", origin=own) as ws:
            await ws.send("mine")
            assert await ws.recv() == "mine"
        return status

    assert run(main()) == 403


def test_subprotocols_are_not_announced(server):
    """granian's handshake cannot carry a subprotocol: none is agreed, the view
    sees None, and the log says why once."""

    async def main():
        async with connect(
            server.ws_url + "/ws/protocol", subprotocols=["chat", "x"]
        ) as ws:
            assert ws.subprotocol is None
            assert await ws.recv() == "None"

    run(main())
    wait_until(
        lambda: "granian cannot announce the websocket subprotocol" in server.log()
    )


def test_sends_from_two_coroutines_take_turns(server):
    """A broadcast and the view send to the same connections without failing."""

    async def main():
        async with connect(server.ws_url + "/ws/subscribe") as ws:
            wait_until(lambda: "subscribed" in httpx.get(server.url + "/events").text)
            async with httpx.AsyncClient() as client:
                answers = await asyncio.gather(
                    *(client.get(server.url + f"/broadcast?m={n}") for n in range(5))
                )
            assert [answer.text for answer in answers] == ["1"] * 5
            got = {await ws.recv() for _ in range(5)}
            assert got == {str(n) for n in range(5)}

    run(main())


def test_vanished_client_ends_the_view(server):
    """A client that goes without a close frame ends its view's recv()."""

    async def main():
        async with connect(server.ws_url + "/ws/echo") as ws:
            await ws.send("hi")
            await ws.recv()
            ws.transport.abort()

    before = httpx.get(server.url + "/status").text
    run(main())
    wait_until(lambda: httpx.get(server.url + "/status").text != before)


def test_push_to_a_vanished_client_ends_the_view_quietly(server):
    """A view pushing to a client that vanished ends; no failure is logged."""

    async def main():
        async with connect(server.ws_url + "/ws/flood") as ws:
            await ws.recv()
            ws.transport.abort()

    run(main())
    wait_until(lambda: "flood" in httpx.get(server.url + "/events").text)
    assert '"GET /ws/flood HTTP/1.1" failed' not in server.log()


def test_the_websocket_budget_answers_503():
    """Past aiopyramid.websocket.max_connections a handshake gets 503 (granian
    sends no Retry-After)."""
    with serve(**{"aiopyramid.websocket.max_connections": "1"}) as server:

        async def main():
            async with connect(server.ws_url + "/ws/echo") as ws:
                await ws.send("hold")
                await ws.recv()
                status = await refused(server.ws_url + "/ws/echo")
            async with connect(server.ws_url + "/ws/echo") as ws:  # free again
                await ws.send("again")
                assert await ws.recv() == "again"
            return status

        assert run(main()) == 503
        wait_until(lambda: "503" in access_lines(server, "/ws/echo"))


def test_the_send_deadline_ends_a_client_that_never_reads():
    """A client that takes nothing for aiopyramid.send_timeout ends its view."""
    with serve(**{"aiopyramid.send_timeout": "1"}) as server:

        async def main():
            async with connect(server.ws_url + "/ws/deluge") as ws:
                ws.transport.pause_reading()
                await wait_until_async(
                    lambda: asyncio.to_thread(
                        lambda: "deluge" in httpx.get(server.url + "/events").text
                    ),
                    30,
                )
                ws.transport.abort()  # not reading: no closing handshake

        run(main())
        wait_until(lambda: access_lines(server, "/ws/deluge")[-1:] == ["1006"])
        assert "aiopyramid.send_timeout" in server.log()
