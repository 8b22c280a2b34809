"""WebsocketMapper under AsyncGunicornWorker and under uvicorn, with real clients."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    python_module,
    require_module,
    running,
    wait_until,
)

pytestmark = pytest.mark.server
websockets = import_required("websockets")
httpx = import_required("httpx")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402


@pytest.fixture(scope="module", params=["gunicorn", "uvicorn"])
def server(request):
    """The websocket test app under the gunicorn worker, then under uvicorn."""
    for name in ("gunicorn", "uvicorn", "websockets", "httpx"):
        require_module(name)
    port = free_port()
    if request.param == "gunicorn":
        command = gunicorn_command(
            "--bind",
            f"127.0.0.1:{port}",
            "tests.apps.websockets:app",
        )
    else:
        command = python_module(
            "uvicorn",
            "--port",
            str(port),
            "--no-access-log",
            "tests.apps.websockets:asgi",
        )
    with running(command, port) as process:
        process.kind = request.param
        yield process


def run(coroutine):
    """Run a client coroutine with a bounded time."""
    return asyncio.run(asyncio.wait_for(coroutine, 60 * UNIT))


def test_echo_text_and_binary(server):
    """Text frames come back as text, binary as binary."""

    async def main():
        async with connect(server.ws_url + "/ws/echo") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"

    run(main())


def test_views_see_str_and_bytes_or_only_bytes(server):
    """Views get str for text and bytes for binary; use_bytes makes both bytes."""

    async def main():
        async with connect(server.ws_url + "/ws/kinds") as ws:
            await ws.send("t")
            await ws.send(b"b")
            assert [await ws.recv(), await ws.recv()] == ["str", "bytes"]
        async with connect(server.ws_url + "/ws/bytes") as ws:
            await ws.send("t")
            assert await ws.recv() == "bytes"

    run(main())


def test_legacy_generator_view(server):
    """A 2014-style view using yield from ws.recv() works unchanged."""

    async def main():
        async with connect(server.ws_url + "/ws/legacy") as ws:
            await ws.send("old style")
            assert await ws.recv() == "old style"

    run(main())


def test_class_view_callbacks(server):
    """WebsocketConnectionView runs on_open, on_message per message, and on_close."""

    async def main():
        async with connect(server.ws_url + "/ws/counter/ann") as ws:
            assert await ws.recv() == "hello ann"
            await ws.send("x")
            assert await ws.recv() == "1: x"
            await ws.send("y")
            assert await ws.recv() == "2: y"

    run(main())


def test_server_push_and_close_code(server):
    """A view sends without receiving and closes with its own code and reason."""

    async def main():
        async with connect(server.ws_url + "/ws/push") as ws:
            messages = [await ws.recv() for _ in range(3)]
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return messages, ws.close_code, ws.close_reason

    messages, code, reason = run(main())
    assert messages == ["push 0", "push 1", "push 2"]
    assert (code, reason) == (4001, "done pushing")


def test_subprotocol_negotiation(server):
    """The view's preferred subprotocol among those offered is chosen."""

    async def main():
        async with connect(
            server.ws_url + "/ws/protocol", subprotocols=["chat", "x"]
        ) as ws:
            assert ws.subprotocol == "chat"
            assert await ws.recv() == "chat"
        async with connect(server.ws_url + "/ws/protocol") as ws:
            assert await ws.recv() == "None"

    run(main())


def test_refused_handshake_keeps_the_status(server):
    """A failed permission refuses the handshake with 403; plain GET gets 400."""

    async def main():
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url + "/ws/secret"):
                pass
        return refused.value.response.status_code

    assert run(main()) == 403
    response = httpx.get(server.url + "/ws/echo")
    assert response.status_code == 400
    assert "websocket client" in response.text


def test_abrupt_disconnect_ends_recv(server):
    """A client that vanishes without a close frame ends recv() with None."""
    before = int(httpx.get(server.url + "/status").text)

    async def main():
        ws = await connect(server.ws_url + "/ws/echo")
        await ws.send("x")
        await ws.recv()
        ws.transport.abort()

    run(main())
    wait_until(lambda: int(httpx.get(server.url + "/status").text) != before)


def test_five_hundred_concurrent_connections(server):
    """500 echo connections are served at once by one worker."""

    async def one(number: int) -> str:
        async with connect(server.ws_url + "/ws/echo", open_timeout=30 * UNIT) as ws:
            await ws.send(f"m{number}")
            return await ws.recv()

    async def main():
        return await asyncio.gather(*(one(n) for n in range(500)))

    assert run(main()) == [f"m{n}" for n in range(500)]


def test_broadcast_from_one_coroutine(server):
    """One coroutine feeds several connections."""

    def subscribed() -> int:
        return int(httpx.get(server.url + "/status?name=subscribed").text)

    before = subscribed()

    async def main():
        clients = [await connect(server.ws_url + "/ws/subscribe") for _ in range(3)]
        await asyncio.to_thread(wait_until, lambda: subscribed() == before + 3)
        async with httpx.AsyncClient() as client:
            count = (await client.get(server.url + "/broadcast?m=news")).text
        received = [await ws.recv() for ws in clients]
        for ws in clients:
            await ws.close()
        return count, received

    count, received = run(main())
    assert int(count) >= 3
    assert received == ["news"] * 3


def test_push_to_vanished_client_ends_the_view(server):
    """A view pushing to a client that vanished ends quietly at its next send."""
    before = int(httpx.get(server.url + "/status?name=flood").text)

    async def main():
        ws = await connect(server.ws_url + "/ws/flood")
        assert await ws.recv() == "tick"
        ws.transport.abort()

    run(main())
    wait_until(lambda: int(httpx.get(server.url + "/status?name=flood").text) > before)
    assert "Exception in ASGI application" not in server.log()


def test_send_after_close_raises_with_the_code(server):
    """ws.send() after ws.close(code) raises WebsocketClosed naming that code."""

    async def main():
        async with connect(server.ws_url + "/ws/after_close") as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    assert run(main()) == (4002, "bye")
    wait_until(
        lambda: (
            "after-close: websocket closed with code 4002"
            in httpx.get(server.url + "/events").text
        )
    )


def test_websocket_closed_caused_by_a_bug_is_logged(server):
    """A WebsocketClosed whose cause is not a disconnection reaches the error log."""

    async def main():
        async with connect(server.ws_url + "/ws/fail") as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosed):
                await ws.recv()

    run(main())
    wait_until(lambda: "ValueError: a bug in the view" in server.log())


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [("refuse_generator", 401, b"come back later"), ("refuse_async", 404, b"not here")],
)
def test_refusal_body_from_a_generator(server, path, status, body):
    """A refusal whose body is generated (sync or async) reaches the client whole."""

    async def main():
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url + "/ws/" + path):
                pass
        return refused.value.response

    response = run(main())
    assert (response.status_code, response.body) == (status, body)


def test_an_http_exception_refuses_with_its_own_response(server):
    """raise HTTPGone() before accepting: the client gets 410, its headers and body."""

    async def main():
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url + "/ws/gone"):
                pass
        return refused.value.response

    response = run(main())
    assert response.status_code == 410
    assert response.headers["X-Moved-To"] == "/ws/echo"
    assert b"This feed has moved to /ws/echo." in response.body


def test_deflate_is_agreed(server):
    """Both servers agree to permessage-deflate when the client offers it."""

    async def main():
        async with connect(server.ws_url + "/ws/echo") as ws:
            await ws.send("plain" * 100)
            assert await ws.recv() == "plain" * 100
            return ws.response.headers.get("Sec-WebSocket-Extensions", "")

    assert run(main()).startswith("permessage-deflate")


def test_deflate_can_be_turned_off():
    """aiopyramid.websocket.per_message_deflate = false: the worker declines it."""
    for name in ("gunicorn", "websockets"):
        require_module(name)
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "tests.apps.websockets:with_deflate(False)",
    )
    with running(command, port) as process:

        async def main():
            async with connect(process.ws_url + "/ws/echo") as ws:
                await ws.send("plain")
                assert await ws.recv() == "plain"
                return ws.response.headers.get("Sec-WebSocket-Extensions")

        assert run(main()) is None
