"""The application that the uWSGI tests serve with uWSGI's asyncio plugin.

Loaded by uWSGI (``module = tests.apps.uwsgi:application``) with the uWSGI
virtualenv's Python, not by pytest.  Every route exercises one piece of aiopyramid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

from pyramid.config import Configurator
from pyramid.interfaces import ITraverser
from pyramid.response import Response
from pyramid.threadlocal import get_current_request
from zope.interface import Interface

from aiopyramid.helpers import synchronize
from aiopyramid.traversal import AsyncioTraverser
from aiopyramid.websocket.config import UWSGIWebsocketMapper
from aiopyramid.websocket.helpers import ignore_websocket_closed
from aiopyramid.websocket.view import WebsocketConnectionView

logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")

#: What the class-based websocket views saw closing, for GET /closed.
closed_connections: list[str] = []


@synchronize
async def double(value: int) -> int:
    """A coroutine that plain code waits for."""
    await asyncio.sleep(0.01)
    return value * 2


async def sleep_view(request: Any) -> Response:
    """Wait on the loop for ``t`` seconds (1 by default)."""
    await asyncio.sleep(float(request.params.get("t", "1")))
    return Response("slept")


async def hog_view(request: Any) -> Response:
    """Block the loop's thread for ``t`` seconds (what the watchdog reports)."""
    time.sleep(float(request.params.get("t", "1")))
    return Response("hogged")


async def who_view(request: Any) -> Response:
    """Answer with the current request's ``n``, read after a wait."""
    await asyncio.sleep(0.2)
    current = get_current_request()
    return Response(f"{request.params['n']}:{current.params['n']}")


def plain_view(request: Any) -> Response:
    """A plain view: runs in the executor and waits for a coroutine there."""
    return Response(
        json.dumps(
            {
                "thread": threading.current_thread().name,
                "main": threading.current_thread() is threading.main_thread(),
                "double": double(21),
                "same_request": get_current_request() is request,
            }
        )
    )


async def executor_view(request: Any) -> Response:
    """Hand blocking work to threads that wait for coroutines themselves."""
    loop = asyncio.get_running_loop()
    bare = await loop.run_in_executor(None, double, 5)
    copied = await asyncio.to_thread(double, 7)
    return Response(json.dumps({"run_in_executor": bare, "to_thread": copied}))


class Leaf:
    """A resource at the end of the tree."""

    def __init__(self, name: str) -> None:
        self.__name__ = name


class Root:
    """A root whose children are looked up by a coroutine."""

    __name__ = ""

    def __init__(self, request: Any) -> None:
        self.request = request

    async def __getitem__(self, name: str) -> Leaf:
        await asyncio.sleep(0.01)
        if name.startswith("missing"):
            raise KeyError(name)
        return Leaf(name)


def leaf_view(context: Leaf, request: Any) -> Response:
    """Name the leaf that asynchronous traversal found."""
    return Response(f"leaf {context.__name__}")


async def echo(ws: Any) -> None:
    """Echo every message back (an ``async def`` function view)."""
    while True:
        message = await ws.recv()
        if message is None:
            return
        await ws.send(message)


def legacy_echo(ws: Any) -> Any:
    """Echo every message back, written as a 2014 generator view."""
    while True:
        message = yield from ws.recv()
        if message is None:
            break
        yield from ws.send(message)


async def types_view(ws: Any) -> None:
    """Answer each message with the name of the type it arrived as."""
    while (message := await ws.recv()) is not None:
        await ws.send(type(message).__name__)


async def server_close(ws: Any) -> None:
    """Greet, then close with code 4000 and a reason."""
    await ws.send("bye soon")
    await ws.close(4000, "done here")


async def once(ws: Any) -> None:
    """Answer one message, then return without closing."""
    message = await ws.recv()
    await ws.send(f"once: {message}")


async def failing(ws: Any) -> None:
    """Fail after the first message."""
    await ws.recv()
    raise ValueError("this view fails on purpose")


async def pusher(ws: Any) -> None:
    """Push a message every 20 ms until sending fails; then record it."""
    name = get_current_request().matchdict["name"]
    try:
        for number in range(1000):
            await ws.send(f"push {number}")
            await asyncio.sleep(0.02)
    finally:
        # Both are no-ops on a closed connection.
        await ws.close()
        await ws.close()
        closed_connections.append(f"pusher {name}")


async def close_code(ws: Any) -> None:
    """Say the close code while open, echo, then record the client's code."""
    name = get_current_request().matchdict["name"]
    await ws.send(f"open {ws.close_code}")
    while (message := await ws.recv()) is not None:
        await ws.send(message)
    closed_connections.append(f"{name} {ws.close_code}")


async def flood(ws: Any) -> None:
    """Send 64 KiB messages until the connection fails; record how it ended."""
    try:
        for _ in range(10_000):
            await ws.send(b"x" * 65536)
    finally:
        closed_connections.append(f"flood closed={ws.closed}")


async def impatient(ws: Any) -> None:
    """Give up waiting for a first message after 0.2 s, then echo one."""
    try:
        await asyncio.wait_for(ws.recv(), 0.2)
    except asyncio.TimeoutError:
        await ws.send("nothing yet")
    await ws.send(await ws.recv())


async def deaf(ws: Any) -> None:
    """Read nothing: let messages pile up for half a second, then return."""
    await asyncio.sleep(0.5)


async def slow_echo(ws: Any) -> None:
    """Let messages pile up for half a second, then echo them all."""
    await asyncio.sleep(0.5)
    while (message := await ws.recv()) is not None:
        await ws.send(message)


async def which_protocol(ws: Any) -> None:
    """Say which subprotocol the handshake chose."""
    await ws.send(str(ws.subprotocol))


class BytesMapper(UWSGIWebsocketMapper):
    """Keep messages as bytes."""

    use_str = False


class Tracker(WebsocketConnectionView):
    """Echo with a prefix; record opening and closing."""

    __view_mapper__ = UWSGIWebsocketMapper

    def on_open(self) -> Any:
        yield from self.send(f"hello {self.request.matchdict['name']}")

    async def on_message(self, message: str | bytes) -> None:
        await self.send(message)

    def on_close(self) -> None:
        closed_connections.append(self.request.matchdict["name"])


def closed_view(request: Any) -> Response:
    """List the class-view connections that saw on_close."""
    return Response(json.dumps(closed_connections))


def coverage_view(request: Any) -> Response:
    """Save coverage data gathered so far (uWSGI skips atexit in async mode)."""
    import coverage

    current = coverage.Coverage.current()
    if current is not None:
        current.save()
    return Response(str(current is not None))


async def body_view(request: Any) -> Any:
    """A coroutine view reading the request body on the loop."""
    await asyncio.sleep(0)
    return Response(f"{len(request.body)} {request.body[:5].decode()}")


def make_application(wrapped: bool = True) -> Any:
    """Configure the test application, wrapped in ignore_websocket_closed or not."""
    with Configurator() as config:
        config.include("aiopyramid")
        config.registry.registerAdapter(AsyncioTraverser, (Interface,), ITraverser)
        config.add_tween("tests.apps.tweens.stamping_tween_factory")
        config.add_tween("aiopyramid.tweens.coroutine_logger_tween_factory")
        views = {
            "/sleep": sleep_view,
            "/hog": hog_view,
            "/who": who_view,
            "/plain": plain_view,
            "/executor": executor_view,
            "/closed": closed_view,
            "/body": body_view,
            "/_coverage": coverage_view,
        }
        for path, view in views.items():
            config.add_route(path, path)
            config.add_view(view, route_name=path)
        config.add_route("tree", "/tree/*traverse", factory=Root)
        config.add_view(leaf_view, route_name="tree", context=Leaf)
        sockets = {
            "/ws/echo": (echo, UWSGIWebsocketMapper),
            "/ws/legacy": (legacy_echo, UWSGIWebsocketMapper),
            "/ws/types": (types_view, UWSGIWebsocketMapper),
            "/ws/bytes-types": (types_view, BytesMapper),
            "/ws/bytes-echo": (echo, BytesMapper),
            "/ws/close": (server_close, UWSGIWebsocketMapper),
            "/ws/once": (once, UWSGIWebsocketMapper),
            "/ws/str-types": (types_view, BytesMapper.options(use_str=True)),
            "/ws/protocol": (
                which_protocol,
                UWSGIWebsocketMapper.options(subprotocols=["chat.v2", "chat.v1"]),
            ),
            "/ws/failing": (failing, UWSGIWebsocketMapper),
            "/ws/impatient": (impatient, UWSGIWebsocketMapper),
            "/ws/flood": (flood, UWSGIWebsocketMapper),
            "/ws/deaf": (deaf, UWSGIWebsocketMapper),
            "/ws/slow-echo": (slow_echo, UWSGIWebsocketMapper),
        }
        for path, (view, mapper) in sockets.items():
            config.add_route(path, path)
            config.add_view(view, route_name=path, mapper=mapper)
        config.add_route("tracker", "/ws/tracker/{name}")
        config.add_view(Tracker, route_name="tracker")
        config.add_route("close-code", "/ws/close-code/{name}")
        config.add_view(
            close_code, route_name="close-code", mapper=UWSGIWebsocketMapper
        )
        config.add_route("pusher", "/ws/pusher/{name}")
        config.add_view(pusher, route_name="pusher", mapper=UWSGIWebsocketMapper)
    app = config.make_wsgi_app()
    return ignore_websocket_closed(app) if wrapped else app


#: Wrapped as applications written for earlier versions were.
application = make_application()
#: Not wrapped: websocket connections must end quietly all the same.
bare_application = make_application(wrapped=False)
