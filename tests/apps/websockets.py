"""A Pyramid application with websocket views, for the websocket tests."""

from __future__ import annotations

import asyncio

from pyramid.config import Configurator

from aiopyramid.asgi import make_asgi_app
from aiopyramid.websocket.config import WebsocketMapper
from aiopyramid.websocket.exceptions import WebsocketClosed
from aiopyramid.websocket.view import WebsocketConnectionView

CLOSED: list[str] = []
SUBSCRIBERS: set = set()


async def echo(ws):
    """Echo every message back."""
    while True:
        message = await ws.recv()
        if message is None:
            CLOSED.append("echo")
            return
        await ws.send(message)


def legacy_echo(ws):
    """The 2014 style: a plain generator with yield from."""
    while True:
        message = yield from ws.recv()
        if message is None:
            break
        yield from ws.send(message)


async def kinds(ws):
    """Answer with the type of what arrived."""
    while (message := await ws.recv()) is not None:
        await ws.send(type(message).__name__)


async def push(ws):
    """Send without having received, then close with a code."""
    for number in range(3):
        await ws.send(f"push {number}")
    await ws.close(4001, "done pushing")


async def protocol(ws):
    """Report the chosen subprotocol."""
    await ws.send(str(ws.subprotocol))


async def subscribe(ws):
    """Join the broadcast group (and say so) until the client leaves."""
    SUBSCRIBERS.add(ws)
    CLOSED.append("subscribed")
    try:
        while await ws.recv() is not None:
            pass
    finally:
        SUBSCRIBERS.discard(ws)


async def broadcast(request):
    """Send one message to every subscriber from a single coroutine."""
    from pyramid.response import Response

    text = request.params.get("m", "hello")
    for ws in list(SUBSCRIBERS):
        await ws.send(text)
    return Response(str(len(SUBSCRIBERS)))


def status(request):
    """How many views named ``?name=`` (default echo) have seen their close."""
    from pyramid.response import Response

    return Response(str(CLOSED.count(request.params.get("name", "echo"))))


def events(request):
    """Everything recorded by the views, one line each."""
    from pyramid.response import Response

    return Response("\n".join(CLOSED))


async def flood(ws):
    """Push until the client vanishes; the failed send ends the view."""
    try:
        while True:
            await ws.send("tick")
            await asyncio.sleep(0.01)
    finally:
        CLOSED.append("flood")


async def deluge(ws):
    """Push 64 KiB messages as fast as they are taken; note how it ended."""
    try:
        while True:
            await ws.send(b"x" * 65536)
    finally:
        CLOSED.append("deluge")


async def send_after_close(ws):
    """Close with a code, then try to send: the error names the code."""
    await ws.close(4002, "bye")
    try:
        await ws.send("too late")
    except WebsocketClosed as closed:
        CLOSED.append(f"after-close: {closed}")


async def fail(ws):
    """Raise a WebsocketClosed caused by a bug: it is an error, not a close."""
    await ws.recv()
    raise WebsocketClosed("wrapped") from ValueError("a bug in the view")


def refuse_generator(request):
    """Refuse a handshake with a body made by a generator."""
    from pyramid.response import Response

    def body():
        yield b"come back "
        yield b"later"

    return Response(status=401, app_iter=body())


def refuse_async(request):
    """Refuse a handshake with a body made by an async generator."""
    from pyramid.response import Response

    async def body():
        yield b"not "
        yield b"here"

    response = Response(status=404)
    response.app_iter = body()
    return response


def forbidden(ws):
    """Never reached: the permission fails first."""
    raise AssertionError("reached")


class Counter(WebsocketConnectionView):
    """A class view: greets, counts messages, and records its close."""

    __view_mapper__ = WebsocketMapper

    def on_open(self):
        yield from self.send("hello " + self.request.matchdict["name"])
        self.count = 0

    async def on_message(self, message):
        self.count += 1
        await self.send(f"{self.count}: {message}")

    def on_close(self):
        CLOSED.append("counter")


class Gone(WebsocketConnectionView):
    """Refuses its handshake with an HTTP exception, before the mapper accepts."""

    __view_mapper__ = WebsocketMapper

    def __init__(self, context, request):
        from pyramid.httpexceptions import HTTPGone

        raise HTTPGone(
            "This feed has moved to /ws/echo.", headers={"X-Moved-To": "/ws/echo"}
        )


class Deny:
    """A security policy that refuses the 'secret' permission."""

    def permits(self, request, context, permission):
        return permission != "secret"

    def identity(self, request):
        return None

    def authenticated_userid(self, request):
        return None


def main(global_config=None, **settings):
    """The websocket test application."""
    config = Configurator(settings=settings)
    config.include("aiopyramid")
    config.set_security_policy(Deny())
    views = {
        "echo": (echo, WebsocketMapper),
        "legacy": (legacy_echo, WebsocketMapper),
        "kinds": (kinds, WebsocketMapper),
        "bytes": (kinds, WebsocketMapper.options(use_bytes=True)),
        "push": (push, WebsocketMapper),
        "protocol": (
            protocol,
            WebsocketMapper.options(subprotocols=["chat.v2", "chat"]),
        ),
        "subscribe": (subscribe, WebsocketMapper),
        "flood": (flood, WebsocketMapper),
        "deluge": (deluge, WebsocketMapper),
        "after_close": (send_after_close, WebsocketMapper),
        "fail": (fail, WebsocketMapper),
        "refuse_generator": (refuse_generator, None),
        "refuse_async": (refuse_async, None),
    }
    for name, (view, mapper) in views.items():
        config.add_route(name, f"/ws/{name}")
        config.add_view(view, route_name=name, mapper=mapper)
    config.add_route("gone", "/ws/gone")
    config.add_view(Gone, route_name="gone")
    config.add_route("counter", "/ws/counter/{name}")
    config.add_view(Counter, route_name="counter")
    config.add_route("secret", "/ws/secret")
    config.add_view(
        forbidden, route_name="secret", mapper=WebsocketMapper, permission="secret"
    )
    config.add_route("broadcast", "/broadcast")
    config.add_view(broadcast, route_name="broadcast")
    config.add_route("status", "/status")
    config.add_view(status, route_name="status")
    config.add_route("events", "/events")
    config.add_view(events, route_name="events")
    return config.make_wsgi_app()


def with_deflate(enabled):
    """The app with ``aiopyramid.websocket.per_message_deflate`` set to a bool."""
    return main(**{"aiopyramid.websocket.per_message_deflate": enabled})


def with_settings(*pairs):
    """The app with settings given as ``"name=value"`` strings (gunicorn's
    application factory calls take literals only)."""
    return main(**dict(pair.split("=", 1) for pair in pairs))


app = main()
asgi = make_asgi_app(app)


def rsgi_app():
    """The app under granian's RSGI interface (``granian --factory``).

    Its settings come from ``AIOPYRAMID_TEST_WS_SETTINGS``, a JSON object
    of settings, and its access lines go to the server's log.
    """
    import json
    import logging
    import os
    import sys

    from aiopyramid.rsgi import make_rsgi_app

    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    settings = json.loads(os.environ.get("AIOPYRAMID_TEST_WS_SETTINGS") or "{}")
    return make_rsgi_app(main(**{"aiopyramid.access_log": "true", **settings}))
