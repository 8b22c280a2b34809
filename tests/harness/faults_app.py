"""The faults application: failures, disconnects and leaks under a server.

Served as ``tests.harness.faults_app:main()`` to the worker's fault tests and
to the mixed load of :mod:`.mixed_load` (the leak test and ``bench/soak.py``).

Exceptions raised in a coroutine view, an awaited coroutine, a tween and an
asynchronous traverser reach a custom exception view; ``/counts`` reports
what is alive in the worker (a test-only view).  Settings come from the
environment: ``AIOPYRAMID_TEST_SLOW_MS``, ``AIOPYRAMID_TEST_HEAD_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time

from pyramid.config import Configurator
from pyramid.interfaces import ITraverser
from pyramid.response import Response
from pyramid.tweens import EXCVIEW
from zope.interface import Interface

from aiopyramid._greenlets import SpawnedGreenlet, idle_greenlets
from aiopyramid.helpers import synchronize
from aiopyramid.traversal import AsyncioTraverser
from aiopyramid.websocket.config import WebsocketMapper

#: What happened, for the tests to ask about through /counts.
EVENTS = {
    "sleep-started": 0,
    "sleep-cancelled": 0,
    "stream-closed": 0,
    "upload-seen": 0,
}


class Teapot(Exception):
    """An error with an exception view of its own."""


def teapot_view(exc, request):
    """The custom exception view: 418 with the error's message."""
    return Response(f"teapot: {exc}", status=418)


async def view_error(request):
    """A coroutine view that raises."""
    await asyncio.sleep(0)
    raise Teapot("from a coroutine view")


async def fail_later():
    """An awaited coroutine that raises after a real wait."""
    await asyncio.sleep(0.01)
    raise Teapot("from an awaited coroutine")


async def await_error(request):
    """A coroutine view whose awaited coroutine raises."""
    await fail_later()


async def unhandled(request):
    """A coroutine view raising an error no exception view handles."""
    await asyncio.sleep(0)
    raise RuntimeError("nobody handles this")


def executor_error(request):
    """A plain view (executor thread) that raises."""
    raise Teapot("from an executor view")


@synchronize
async def check_path(request):
    """Awaited by the tween: fails for /tween_error."""
    await asyncio.sleep(0)
    if request.path == "/tween_error":
        raise Teapot("from a tween")


def failing_tween_factory(handler, registry):
    """A tween that waits for a coroutine, which may raise."""

    def failing_tween(request):
        check_path(request)
        return handler(request)

    return failing_tween


class Resource:
    """A resource whose children are looked up asynchronously."""

    def __init__(self, name: str = "") -> None:
        self.__name__ = name

    async def __getitem__(self, name: str) -> Resource:
        await asyncio.sleep(0)
        if name == "boom":
            raise Teapot("from a traverser")
        return Resource(name)


def root_factory(request):
    """The traversal root for /trav/*traverse."""
    return Resource()


async def traversed(context, request):
    """Name the resource that traversal found."""
    return Response(f"found {context.__name__}")


async def hello(request):
    """A quick coroutine view."""
    return Response("Hello coroutine")


def plain(request):
    """A quick plain view (executor thread)."""
    return Response("Hello plain")


async def sleep(request):
    """Wait on the loop; count waits and cancellations."""
    EVENTS["sleep-started"] += 1
    try:
        await asyncio.sleep(float(request.params.get("s", "1")))
    except asyncio.CancelledError:
        EVENTS["sleep-cancelled"] += 1
        raise
    return Response("slept")


def stream(request):
    """A generated body of ``n`` 64 KiB chunks; counts its close()."""

    def chunks():
        try:
            for _ in range(int(request.params.get("n", "1000"))):
                yield b"x" * 65536
        finally:
            EVENTS["stream-closed"] += 1

    return Response(app_iter=chunks(), content_type="application/octet-stream")


async def upload(request):
    """Count the body's bytes."""
    EVENTS["upload-seen"] += 1
    return Response(str(len(request.body)))


async def hog(request):
    """Hold the loop (what never to do), for the slow callback setting."""
    time.sleep(float(request.params.get("s", "0.3")))
    return Response("hogged")


async def counts(request):
    """Test-only: busy greenlets, tasks, threads, RSS and events, as JSON.

    Runs on the loop's thread, whose pool of idle greenlets is the one to
    leave out; this request's own greenlet and task count as one each.
    """
    gc.collect()
    idle = {id(g) for g in idle_greenlets()}
    busy = sum(
        1
        for g in gc.get_objects()
        # type, not isinstance: a pool thread keeps its ThreadGreenlet.
        if type(g) is SpawnedGreenlet and not g.dead and id(g) not in idle
    )
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    body = {
        "greenlets": busy,
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
        "objects": len(gc.get_objects()),
        "rss": rss,
        "events": EVENTS,
        "pid": os.getpid(),
    }
    return Response(json.dumps(body).encode(), content_type="application/json")


async def echo(ws):
    """Echo websocket messages until the client leaves."""
    while (message := await ws.recv()) is not None:
        await ws.send(message)


def main(global_config=None, **settings):
    """The faults application."""
    settings.setdefault("aiopyramid.websocket.max_size", "65536")
    settings.setdefault("aiopyramid.max_body_size", str(2**20))
    slow = os.environ.get("AIOPYRAMID_TEST_SLOW_MS")
    if slow:
        settings["aiopyramid.debug.slow_callback_ms"] = slow
    head = os.environ.get("AIOPYRAMID_TEST_HEAD_TIMEOUT")
    if head:
        settings["aiopyramid.request_head_timeout"] = head
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        config.registry.registerAdapter(AsyncioTraverser, (Interface,), ITraverser)
        config.add_tween(
            "tests.harness.faults_app.failing_tween_factory", under=EXCVIEW
        )
        config.add_exception_view(teapot_view, Teapot)
        views = {
            "view_error": view_error,
            "await_error": await_error,
            "unhandled": unhandled,
            "executor_error": executor_error,
            "tween_error": hello,
            "hello": hello,
            "plain": plain,
            "sleep": sleep,
            "stream": stream,
            "upload": upload,
            "hog": hog,
            "counts": counts,
        }
        for name, view in views.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_route("trav", "/trav/*traverse", factory=root_factory)
        config.add_view(traversed, route_name="trav")
        config.add_route("echo", "/ws/echo")
        config.add_view(echo, route_name="echo", mapper=WebsocketMapper)
    return config.make_wsgi_app()


def rsgi():
    """The faults application for granian (``--interface rsgi --factory``)."""
    from aiopyramid.rsgi import make_rsgi_app

    return make_rsgi_app(main())
