"""The applications bench/serving.py measures: one Pyramid app, one Starlette app."""

from __future__ import annotations

import asyncio
import time

from pyramid.config import Configurator
from pyramid.response import Response


def plain(request):
    """Hello world, plain view (executor under aiopyramid)."""
    return Response("Hello, world")


async def coroutine(request):
    """Hello world, coroutine view."""
    return Response("Hello, world")


async def wait_coroutine(request):
    """Wait 100 ms on the loop."""
    await asyncio.sleep(0.1)
    return Response("waited")


def wait_plain(request):
    """Wait 100 ms in a thread (for the thread-based peers)."""
    time.sleep(0.1)
    return Response("waited")


def make_app(aiopyramid: bool = True, **settings: str):
    """The Pyramid application, with or without aiopyramid included."""
    config = Configurator(settings=settings)
    if aiopyramid:
        config.include("aiopyramid")
    views = {"plain": plain, "wait_plain": wait_plain}
    if aiopyramid:
        views.update(coroutine=coroutine, wait_coroutine=wait_coroutine)
    for name, view in views.items():
        config.add_route(name, f"/{name}")
        config.add_view(view, route_name=name)
    return config.make_wsgi_app()


#: For gunicorn's sync/gthread workers and uWSGI: plain Pyramid.
wsgi = make_app(aiopyramid=False)
#: For AsyncGunicornWorker.
app = make_app(aiopyramid=True)
#: The same with Python's own collector thresholds in the worker (700, 10, 10),
#: as before the worker raised the first one.
python_gc = make_app(aiopyramid=True, **{"aiopyramid.gc_threshold": "0"})


#: With aiopyramid.mode = greenlet: plain views in the request's greenlet.
greenlet_app = make_app(aiopyramid=True, **{"aiopyramid.mode": "greenlet"})


def rsgi_app():
    """The application as pserve's granian runner serves it, for granian --factory."""
    from aiopyramid._granian import served

    return served(app)


def rsgi_greenlet_app():
    """The same in greenlet mode."""
    from aiopyramid._granian import served

    return served(greenlet_app)


def bridge_app():
    """The same application through aiopyramid's ASGI bridge, for uvicorn."""
    from aiopyramid.asgi import make_asgi_app

    return make_asgi_app(app)


def starlette_app():
    """The same two endpoints in Starlette (None if it is not installed)."""
    try:
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
    except ImportError:  # pragma: no cover
        return None

    async def hello(request):
        return PlainTextResponse("Hello, world")

    async def wait(request):
        await asyncio.sleep(0.1)
        return PlainTextResponse("waited")

    return Starlette(
        routes=[Route("/coroutine", hello), Route("/wait_coroutine", wait)]
    )


starlette = starlette_app()
