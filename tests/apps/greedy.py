"""The application the slow and greedy client tests aim at (``tests.apps.greedy:app``).

``/hello`` answers at once; ``/pid`` says which process serves; ``/stream``
streams ``n`` chunks of 1 MiB (the same bytes object each time, so that
what a stuck response holds is the server's, not the view's), and
``/busy`` says how many of those (and of ``/ws/flood``) are under way; ``/ws/sink``
is a websocket that accepts and reads nothing for ``greedy.sink_seconds``;
``/ws/flood`` one that sends 1 MiB messages for as long as it can;
``/ws/idle`` one that waits for the client to leave.  Settings come from
``AIOPYRAMID_TEST_SETTINGS`` (``name=value`` pairs separated by ``;``), so
that each test can set the deadlines and budgets it probes.
"""

from __future__ import annotations

import asyncio
import os

from pyramid.config import Configurator
from pyramid.response import Response

from aiopyramid.websocket.config import UWSGIWebsocketMapper, WebsocketMapper

#: One MiB, shared by every streamed response.
CHUNK = b"x" * 2**20


def hello(request):
    """A plain answer."""
    return Response("hello")


def pid(request):
    """The serving process's id."""
    return Response(str(os.getpid()))


#: How many ``/stream`` bodies are being sent now, and were ever started
#: (the loop's thread only).
STREAMING = [0]
STARTED = [0]


def stream(request):
    """``n`` MiB (default 200), streamed a MiB at a time."""
    count = int(request.params.get("n", "200"))

    def chunks():
        STREAMING[0] += 1
        STARTED[0] += 1
        try:
            for _ in range(count):
                yield CHUNK
        finally:  # the body is done, or given up (its generator closed)
            STREAMING[0] -= 1

    return Response(app_iter=chunks())


def busy(request):
    """How many ``/stream`` bodies and ``/ws/flood`` views are under way."""
    return Response(
        json={"streams": STREAMING[0], "started": STARTED[0], "floods": FLOODING[0]}
    )


async def sink(ws):
    """Accept, then read nothing for ``greedy.sink_seconds`` (default 30)."""
    await ws.send("ready")
    await asyncio.sleep(
        float(settings_from_environment().get("greedy.sink_seconds", 30))
    )


#: How many ``/ws/flood`` views are sending now.
FLOODING = [0]


async def flood(ws):
    """Send 1 MiB messages until the connection is gone."""
    FLOODING[0] += 1
    try:
        while True:
            await ws.send(CHUNK)
    finally:
        FLOODING[0] -= 1


async def idle(ws):
    """Wait for the client to leave, reading what it sends."""
    while await ws.recv() is not None:
        pass


def settings_from_environment() -> dict[str, str]:
    """The settings of ``AIOPYRAMID_TEST_SETTINGS``."""
    pairs = os.environ.get("AIOPYRAMID_TEST_SETTINGS", "")
    return dict(
        pair.split("=", 1) for pair in pairs.split(";") if pair.strip() and "=" in pair
    )


def coverage(request):
    """Save coverage data gathered so far (uWSGI skips atexit in async mode)."""
    import coverage

    current = coverage.Coverage.current()
    if current is not None:
        current.save()
    return Response(str(current is not None))


def main(global_config=None, *, mapper=WebsocketMapper, **settings):
    """The target of the slow and greedy clients (websockets mapped by ``mapper``)."""
    settings = {**settings_from_environment(), **settings}
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        for name, view in [
            ("hello", hello),
            ("pid", pid),
            ("stream", stream),
            ("busy", busy),
            ("_coverage", coverage),
        ]:
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        for name, view in [("sink", sink), ("flood", flood), ("idle", idle)]:
            config.add_route(f"ws-{name}", f"/ws/{name}")
            config.add_view(view, route_name=f"ws-{name}", mapper=mapper)
    return config.make_wsgi_app()


app = main()


#: The same under uWSGI (``module = tests.apps.greedy:uwsgi_application``).
uwsgi_application = main(mapper=UWSGIWebsocketMapper)
