"""The application the attack tests aim at (``tests.apps.attacks:app``/``:asgi``).

Views report what the request looked like to Pyramid (``/env``), fail in the
ways the bridge must contain (``/boom``, ``/crlf``), wait (``/sleep``, which
logs ``sleep started`` to stderr) and take bodies (``/upload``); ``/ws/echo``
and ``/ws/boom`` are websockets.  A body
stalls for at most 2 s (``aiopyramid.body_timeout``); the maximum body size is
the default.  ``AIOPYRAMID_TEST_ACCESS_LOG=1`` turns the bridge's own access log
on (for servers other than gunicorn) and writes it to stderr.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys

from pyramid.config import Configurator
from pyramid.response import Response

from aiopyramid.asgi import make_asgi_app
from aiopyramid.rsgi import make_rsgi_app
from aiopyramid.websocket.config import WebsocketMapper

#: Says in the server's log (its stderr) when a /sleep starts.
started = logging.getLogger("tests.apps.attacks")
started.addHandler(logging.StreamHandler(sys.stderr))
started.setLevel(logging.INFO)
started.propagate = False


def env(request):
    """What reached the application: addresses, scheme and the HTTP_ keys."""
    environ = request.environ
    seen = {
        key: value
        for key, value in environ.items()
        if key.startswith(("HTTP_", "REMOTE_", "CONTENT_", "SCRIPT_", "PATH_"))
    }
    seen["wsgi.url_scheme"] = environ["wsgi.url_scheme"]
    seen["client_addr"] = request.client_addr
    seen["url"] = request.url
    seen["pid"] = os.getpid()
    return seen


def collector(request):
    """The garbage collector's thresholds and frozen count in this process."""
    return {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}


async def sleep(request):
    """Wait ``s`` seconds on the loop."""
    seconds = float(request.params.get("s", "1"))
    started.info("sleep started: %s s", seconds)
    await asyncio.sleep(seconds)
    return Response(f"slept {seconds}")


def boom(request):
    """A view with a bug."""
    raise RuntimeError("boom")


def crlf(request):
    """A view that lets a client's value split its response header."""
    response = Response("split")
    response.headerlist.append(("X-Echo", "a\r\nSet-Cookie: evil=1"))
    return response


def upload(request):
    """The size of the body received."""
    return Response(str(len(request.body)))


async def echo(ws):
    """Echo websocket messages until the client leaves."""
    while (message := await ws.recv()) is not None:
        await ws.send(message)


async def ws_boom(ws):
    """A websocket view that raises after accepting."""
    await ws.send("about to fail")
    raise ValueError("a bug in the websocket view")


def main(global_config=None, **settings):
    """The attack target."""
    settings.setdefault("aiopyramid.body_timeout", "2")
    settings.setdefault(
        "aiopyramid.websocket.allowed_origins",
        "https://friend.example\nhttp://[::1]:8080",
    )
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        for name, view in [
            ("env", env),
            ("gc", collector),
            ("sleep", sleep),
            ("boom", boom),
            ("crlf", crlf),
            ("upload", upload),
        ]:
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name, renderer="json")
        for name, view in [("echo", echo), ("boom", ws_boom)]:
            config.add_route(f"ws-{name}", f"/ws/{name}")
            config.add_view(view, route_name=f"ws-{name}", mapper=WebsocketMapper)
        config.add_route("ws-partner", "/ws/partner")
        config.add_view(
            echo,
            route_name="ws-partner",
            mapper=WebsocketMapper.options(allowed_origins=["https://partner.example"]),
        )
    return config.make_wsgi_app()


if os.environ.get("AIOPYRAMID_TEST_ACCESS_LOG"):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ACCESS %(message)s"))
    logging.getLogger("aiopyramid.access").addHandler(handler)
    logging.getLogger("aiopyramid.access").setLevel(logging.INFO)

app = main(
    **(
        {"aiopyramid.access_log": "true"}
        if os.environ.get("AIOPYRAMID_TEST_ACCESS_LOG")
        else {}
    )
)
asgi = make_asgi_app(app)
#: The RSGI application, for ``granian --interface rsgi tests.apps.attacks:rsgi``;
#: ``AIOPYRAMID_TEST_MAX_CONCURRENCY`` is its request budget (the worker's
#: ``--worker-connections``).
rsgi = make_rsgi_app(
    app,
    max_concurrency=int(os.environ.get("AIOPYRAMID_TEST_MAX_CONCURRENCY") or 0),
)
