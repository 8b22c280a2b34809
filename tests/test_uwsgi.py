"""aiopyramid under a real uWSGI with the asyncio and greenlet plugins.

Every test talks to one uWSGI process (Debian's packages, one worker, 50
async cores) serving ``tests/apps/uwsgi.py`` on a free loopback port,
with real HTTP and ``websockets`` clients.  Without uWSGI the tests skip,
unless ``CI=true``: then they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import sys
import time
import types
import urllib.error
import urllib.request
from collections.abc import Awaitable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from tests.harness.servers import ROOT, UNIT, import_required, wait_until
from tests.harness.uwsgi import UWSGIServer, uwsgi_for_tests

websockets = import_required("websockets")

pytestmark = pytest.mark.server

T = TypeVar("T")


def run(coroutine: Awaitable[T]) -> T:
    """Run a client coroutine on a loop of its own."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, 30 * UNIT)

    return asyncio.run(bounded())


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[UWSGIServer]:
    """The uWSGI server for this module; its log is shown if a test failed."""
    with uwsgi_for_tests(
        request,
        "tests.apps.uwsgi:application",
        "uwsgi.log",
        # No keepalive pings here (websocket/config/test_uwsgi_frames.py has them).
        extra_ini="websockets-ping-freq = 0\n",
    ) as uwsgi:
        yield uwsgi


def never_called_websocket_view() -> tuple[Any, Any]:
    """An app whose uWSGI websocket view must not run, and a handshake for it."""
    from pyramid.config import Configurator
    from webob import Request

    from aiopyramid.websocket.config import UWSGIWebsocketMapper

    async def view(ws: Any) -> None:
        raise AssertionError("never called")

    with Configurator() as config:
        config.include("aiopyramid")
        config.add_route("ws", "/ws")
        config.add_view(view, route_name="ws", mapper=UWSGIWebsocketMapper)
    request = Request.blank(
        "/ws", headers={"Sec-WebSocket-Key": "a2V5a2V5a2V5a2V5a2V5aw=="}
    )
    return config.make_wsgi_app(), request


def get(server: UWSGIServer, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path``: status, headers and body."""
    try:
        with urllib.request.urlopen(server.url + path, timeout=10 * UNIT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def ws_url(server: UWSGIServer, path: str) -> str:
    """The websocket URL of ``path``."""
    return f"ws://127.0.0.1:{server.port}{path}"


def test_coroutine_views_wait_together(server: UWSGIServer) -> None:
    """Fifty requests to a view awaiting asyncio.sleep(1) finish in under 3 s."""
    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: get(server, "/sleep?t=1"), range(50)))
    elapsed = time.monotonic() - started
    assert [(status, body) for status, _, body in answers] == [(200, b"slept")] * 50
    assert elapsed < 3, f"50 concurrent 1 s waits took {elapsed:.2f} s"


def test_request_state_follows_each_request(server: UWSGIServer) -> None:
    """Interleaved requests each see their own current request after waiting."""
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda n: get(server, f"/who?n={n}"), range(30)))
    assert [body for _, _, body in answers] == [f"{n}:{n}".encode() for n in range(30)]


def test_coroutine_view_reads_the_request_body(server: UWSGIServer) -> None:
    """A coroutine view reads a body that arrives late, though it runs on the loop."""
    body = b"hello" + b"x" * 1000
    with socket.create_connection(("127.0.0.1", server.port), 25 * UNIT) as client:
        client.sendall(
            b"POST /body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        # The request starts (the logger tween says so) before the body is there.
        wait_until(lambda: "POST /body started" in server.log())
        client.sendall(body)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"\r\n\r\n1005 hello")


def test_plain_view_runs_in_an_executor_thread(server: UWSGIServer) -> None:
    """A plain view runs off the loop's thread and can wait for a coroutine."""
    status, _, body = get(server, "/plain")
    assert status == 200
    answer = json.loads(body)
    assert answer["main"] is False
    assert answer["double"] == 42
    assert answer["same_request"] is True


def test_threads_of_coroutine_views_wait_for_coroutines(server: UWSGIServer) -> None:
    """Threads from loop.run_in_executor and asyncio.to_thread can synchronize."""
    status, _, body = get(server, "/executor")
    assert status == 200
    assert json.loads(body) == {"run_in_executor": 10, "to_thread": 14}


def test_async_traversal_and_tweens(server: UWSGIServer) -> None:
    """Traversal and tweens wait for coroutines; missing resources are 404."""
    status, headers, body = get(server, "/tree/abc")
    assert (status, body) == (200, b"leaf abc")
    assert headers["X-Tween"] == "waited/waited"
    assert get(server, "/tree/missing-one")[0] == 404
    # The logger tween logs once the response is on its way.
    wait_until(lambda: "GET /tree/abc answered 200" in server.log())


def check_echo(server: UWSGIServer, path: str) -> None:
    """The view at ``path`` echoes text and binary messages."""

    async def talk() -> list[Any]:
        async with websockets.connect(ws_url(server, path)) as ws:
            replies = []
            for message in ["hello", "héllo wörld", b"\x00\xff\xfe"]:
                await ws.send(message)
                replies.append(await ws.recv())
            return replies

    assert run(talk()) == ["hello", "héllo wörld", b"\x00\xff\xfe"]


async def reset(ws: Any) -> None:
    """Vanish with a TCP reset, without a close frame."""
    sock = ws.transport.get_extra_info("socket")
    # Linger 0: close() sends RST instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


def check_vanishing_client(server: UWSGIServer) -> None:
    """A client gone with a TCP reset ends recv(), runs on_close, harms nobody."""

    async def vanish() -> str:
        ws = await websockets.connect(ws_url(server, "/ws/tracker/vanished"))
        greeting: str = await ws.recv()
        await reset(ws)
        return greeting

    assert run(vanish()) == "hello vanished"
    assert "vanished" in _closed_after(server, "vanished")
    status, _, body = get(server, "/sleep?t=0")
    assert (status, body) == (200, b"slept")
    check_echo(server, "/ws/echo")
    assert "Segmentation Fault" not in server.log()


@pytest.mark.parametrize("path", ["/ws/echo", "/ws/legacy"])
def test_websocket_function_views_echo(server: UWSGIServer, path: str) -> None:
    """Async and legacy generator function views echo text and binary messages."""
    check_echo(server, path)


def test_websocket_class_view(server: UWSGIServer) -> None:
    """A WebsocketConnectionView greets, echoes, and runs on_close at the end."""

    async def talk() -> list[Any]:
        async with websockets.connect(ws_url(server, "/ws/tracker/polite")) as ws:
            greeting = await ws.recv()
            await ws.send("ping me")
            return [greeting, await ws.recv()]

    assert run(talk()) == ["hello polite", "ping me"]
    assert "polite" in _closed_after(server, "polite")


def test_text_frames_are_str_and_binary_frames_bytes(server: UWSGIServer) -> None:
    """By default text frames reach the view as str, binary ones as bytes."""

    async def talk() -> list[Any]:
        async with websockets.connect(ws_url(server, "/ws/types")) as ws:
            replies = []
            for message in ["text", b"utf-8 bytes", b"\xff\x00 binary"]:
                await ws.send(message)
                replies.append(await ws.recv())
            return replies

    assert run(talk()) == ["str", "bytes", "bytes"]


def test_use_str_false_keeps_bytes(server: UWSGIServer) -> None:
    """With use_str = False every message is bytes, and bytes go back binary."""

    async def talk(path: str) -> list[Any]:
        async with websockets.connect(ws_url(server, path)) as ws:
            replies = []
            for message in ["text", b"\xff\x00 binary"]:
                await ws.send(message)
                replies.append(await ws.recv())
            return replies

    assert run(talk("/ws/bytes-types")) == ["bytes", "bytes"]
    assert run(talk("/ws/bytes-echo")) == [b"text", b"\xff\x00 binary"]


def test_options_make_mapper_subclasses(server: UWSGIServer) -> None:
    """options() sets use_str back on a bytes mapper, and chooses subprotocols."""

    async def talk() -> list[Any]:
        async with websockets.connect(ws_url(server, "/ws/str-types")) as ws:
            await ws.send("text")
            kind = await ws.recv()
        async with websockets.connect(
            ws_url(server, "/ws/protocol"), subprotocols=["chat.v1"]
        ) as ws:
            return [kind, ws.subprotocol, await ws.recv()]

    assert run(talk()) == ["str", "chat.v1", "chat.v1"]


def test_view_closes_with_code_and_reason(server: UWSGIServer) -> None:
    """ws.close(code, reason) reaches the client as a close frame."""

    async def talk() -> tuple[Any, int | None, str | None]:
        async with websockets.connect(ws_url(server, "/ws/close")) as ws:
            greeting = await ws.recv()
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return greeting, ws.close_code, ws.close_reason

    assert run(talk()) == ("bye soon", 4000, "done here")


def test_big_messages_and_many_connections(server: UWSGIServer) -> None:
    """A 1 MB echo and 40 concurrent echoing connections are served together."""
    big = "x" * 1_000_000

    async def echo(number: int) -> bool:
        async with websockets.connect(ws_url(server, "/ws/echo"), max_size=None) as ws:
            if number == 0:
                await ws.send(big)
                return await ws.recv() == big
            for turn in range(20):
                await ws.send(f"{number}-{turn}")
                if await ws.recv() != f"{number}-{turn}":
                    return False
            return True

    async def all_of_them() -> list[bool]:
        return await asyncio.gather(*(echo(number) for number in range(40)))

    assert run(all_of_them()) == [True] * 40


def test_vanishing_client(server: UWSGIServer) -> None:
    """A client gone with a TCP reset ends recv(), runs on_close, harms nobody."""
    check_vanishing_client(server)


def test_plain_request_to_websocket_view_is_refused(server: UWSGIServer) -> None:
    """A GET without websocket headers gets 400 instead of a handshake."""
    status, _, body = get(server, "/ws/echo")
    assert status == 400
    assert b"websocket" in body


def test_view_that_returns_closes_normally(server: UWSGIServer) -> None:
    """A view that returns without closing ends the connection with code 1000."""

    async def talk() -> tuple[Any, int | None]:
        async with websockets.connect(ws_url(server, "/ws/once")) as ws:
            await ws.send("hi")
            reply = await ws.recv()
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()
            return reply, ws.close_code

    assert run(talk()) == ("once: hi", 1000)


def test_failing_view_closes_with_1011_and_is_logged(server: UWSGIServer) -> None:
    """A view that raises closes with 1011, and its error reaches the log."""

    async def talk() -> int | None:
        async with websockets.connect(ws_url(server, "/ws/failing")) as ws:
            await ws.send("hi")
            with pytest.raises(websockets.ConnectionClosedError):
                await ws.recv()
            return ws.close_code

    assert run(talk()) == 1011
    # The client sees 1011 first; the request ends, and is logged, after.
    wait_until(lambda: "WebsocketClosed: the websocket view failed" in server.log())
    assert "this view fails on purpose" in server.log()


def test_server_push_stops_when_the_client_vanishes(server: UWSGIServer) -> None:
    """A view pushing to a client that reset its connection stops cleanly."""

    async def vanish() -> str:
        ws = await websockets.connect(ws_url(server, "/ws/pusher/gone"))
        first: str = await ws.recv()
        await reset(ws)
        return first

    assert run(vanish()) == "push 0"
    assert "pusher gone" in _closed_after(server, "pusher gone")
    assert "Segmentation Fault" not in server.log()


def test_the_watchdog_reports_a_held_loop_while_it_is_held(server: UWSGIServer) -> None:
    """uWSGI's loop is watched: its log names the holding view while it holds."""
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(get, server, f"/hog?t={2 * UNIT}")
        wait_until(lambda: "the event loop has been held" in server.log(), 10)
        assert not answer.done()  # the request is still being held
        assert answer.result()[0] == 200
    log = server.log()
    warning = log[log.index("the event loop has been held") :]
    assert "aiopyramid.watchdog.seconds = 1)" in warning
    assert ", in hog_view\n    time.sleep(" in warning


def test_closed_connections_stay_out_of_the_log(server: UWSGIServer) -> None:
    """ignore_websocket_closed keeps bare WebsocketClosed out of the log."""
    check_echo(server, "/ws/echo")
    check_vanishing_client(server)
    log = server.log()
    assert "GET /ws/echo" in log
    assert "WebsocketClosed: the websocket connection is closed" not in log


def test_mapper_outside_uwsgi_says_what_to_install() -> None:
    """Without uWSGI, a websocket request fails naming the packages to install."""

    from aiopyramid.helpers import spawn_greenlet

    app, request = never_called_websocket_view()

    async def send() -> Any:
        return await spawn_greenlet(request.get_response, app)

    with pytest.raises(ImportError, match="uwsgi-plugin-asyncio-python3"):
        run(send())


def test_websocket_config_loads_each_mapper_on_demand() -> None:
    """aiopyramid.websocket.config imports without uwsgi and finds its mappers."""
    import aiopyramid.websocket.config as config
    from aiopyramid.websocket.config import uwsgi

    assert config.UWSGIWebsocketMapper is uwsgi.UWSGIWebsocketMapper
    assert {"UWSGIWebsocketMapper", "WebsocketMapper"} <= set(dir(config))
    with pytest.raises(AttributeError, match="NoSuchMapper"):
        config.NoSuchMapper  # noqa: B018


def _closed(server: UWSGIServer) -> list[str]:
    """The class views' closed connections so far."""
    closed: list[str] = json.loads(get(server, "/closed")[2])
    return closed


def _closed_after(server: UWSGIServer, name: str) -> list[str]:
    """The class views' closed connections, once ``name`` is among them."""
    wait_until(lambda: name in _closed(server), 10)
    return _closed(server)


def test_bare_executor_threads_find_the_loop_of_foreign_greenlets() -> None:
    """A bare run_in_executor thread waits on the loop hosting server greenlets."""
    from aiopyramid.helpers import synchronize

    @synchronize
    async def double(value: int) -> int:
        await asyncio.sleep(0)
        return 2 * value

    async def view() -> int:
        # No context reaches this thread: it must find the loop by itself.
        return await asyncio.get_running_loop().run_in_executor(None, double, 4)

    assert _in_foreign_greenlet(synchronize(view)) == 8


def test_message_over_the_default_limit_closes_with_1009(server: UWSGIServer) -> None:
    """A 16 MiB message is refused with 1009 under uWSGI's default 1 MiB limit."""
    from tests.harness.raw_websocket import BINARY, RawClient, raw_frame

    client = RawClient(server)
    try:
        with contextlib.suppress(OSError):  # the server may close first
            client.send(raw_frame(BINARY, b"x" * (16 * 1024 * 1024)))
        assert client.closed_with() == 1009
    finally:
        client.close()
    check_echo(server, "/ws/echo")


def _request_through_fake_uwsgi(opt: dict[str, Any]) -> Any:
    """Send a websocket request to an UWSGIWebsocketMapper view, uwsgi faked."""

    from aiopyramid.helpers import spawn_greenlet

    app, request = never_called_websocket_view()
    fake = types.SimpleNamespace(opt=opt)

    async def send() -> Any:
        return await spawn_greenlet(request.get_response, app)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "uwsgi", fake)
        return run(send())


def test_mapper_refuses_uwsgi_https_sockets() -> None:
    """Under an https-socket the mapper says to terminate TLS before uWSGI."""
    with pytest.raises(RuntimeError, match="Terminate TLS in front of uWSGI"):
        _request_through_fake_uwsgi({"https-socket": b":8443,cert.pem,key.pem"})


def test_uwsgi_websocket_options_are_read_as_numbers() -> None:
    """uWSGI's websocket options count; a value that is no number is named."""
    from pyramid.exceptions import ConfigurationError

    from aiopyramid.websocket.config.uwsgi import _option

    fake = types.SimpleNamespace(
        opt={"websockets-max-size": [b"10", b"20"], "websockets-ping-freq": "5"}
    )
    assert _option(fake, "websockets-max-size", 1024) == 20
    assert _option(fake, "websockets-ping-freq", 30) == 5
    assert _option(fake, "websockets-pong-tolerance", 3) == 3
    fake.opt["websockets-pong-tolerance"] = b"soon"
    with pytest.raises(
        ConfigurationError, match=r"websockets-pong-tolerance = 'soon'.*= 3"
    ):
        _option(fake, "websockets-pong-tolerance", 3)


def test_without_websockets_the_mapper_says_what_to_install() -> None:
    """Importing the uWSGI mapper without websockets names the package."""
    import importlib

    name = "aiopyramid.websocket.config._uwsgi_connection"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "websockets.frames", None)
        patch.delitem(sys.modules, name)
        with pytest.raises(ImportError, match=r"pip install 'websockets>=13'"):
            importlib.import_module(name)


def _in_foreign_greenlet(func: Any) -> Any:
    """Run ``func()`` as uWSGI runs a request: in a greenlet started by a callback.

    As uWSGI's asyncio plugin does, a loop callback starts the request in a
    greenlet of its own, a child of the loop's greenlet.
    """
    import greenlet

    async def serve() -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def request() -> None:
            try:
                answer.set_result(func())
            except Exception as error:
                answer.set_exception(error)

        asyncio.get_running_loop().call_soon(greenlet.greenlet(request).switch)
        return await answer

    return run(serve())


def test_foreign_greenlet_waits_for_a_future_without_a_task() -> None:
    """A future of the loop is waited for as it is: one done callback, no task."""
    from aiopyramid._bridge import wait_for

    def request() -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(0.01, future.set_result, "settled")
        tasks_before = len(asyncio.all_tasks(loop))
        return wait_for(future), tasks_before, len(asyncio.all_tasks(loop))

    value, tasks_before, tasks_after = _in_foreign_greenlet(request)
    assert value == "settled"
    assert tasks_after == tasks_before


def test_foreign_greenlet_and_a_future_of_another_loop() -> None:
    """A future of some other loop is refused as awaiting it in a task would be."""
    from aiopyramid._bridge import wait_for

    other = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="different loop"):
            _in_foreign_greenlet(lambda: wait_for(other.create_future()))
    finally:
        other.close()


def test_resume_leaves_a_dead_greenlet_alone() -> None:
    """The done callback of a wait whose greenlet died does nothing."""
    import greenlet

    from aiopyramid._bridge import _Resume

    dead = greenlet.greenlet(lambda: None)
    dead.switch()
    assert dead.dead
    loop = asyncio.new_event_loop()
    try:
        _Resume(dead)(loop.create_future())
    finally:
        loop.close()


def test_documented_inis_run_a_master_process() -> None:
    """Every uWSGI ini of the docs and README keeps a master process."""
    import re

    for name in ["docs/uwsgi.rst", "README.rst"]:
        text = (ROOT / name).read_text()
        blocks = re.findall(r"\[uwsgi\]\n((?:    .*\n)+)", text)
        assert blocks, f"no [uwsgi] block in {name}"
        for block in blocks:
            assert "master = true" in block, f"{name}: {block}"
