"""Views whose responses exercise HTTP/1 framing on the worker's direct path."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pyramid.config import Configurator
from pyramid.response import Response

#: Where the views note what happened (one line each), for the tests.
NOTES = Path(os.environ.get("AIOPYRAMID_TEST_NOTES", os.devnull))


def note(text: str) -> None:
    with NOTES.open("a") as notes:
        notes.write(text + "\n")


async def hello(request):
    return Response("Hello, world")


async def no_content(request):
    return Response(status=204)


async def not_modified(request):
    response = Response(status=304)
    response.headers["ETag"] = '"v1"'
    return response


def stream(request):
    """A generated body without Content-Length (plain view: runs in a thread)."""

    def chunks():
        yield b"one,"
        yield b"two,"
        yield b"three"

    return Response(app_iter=chunks())


async def short(request):
    """Announces ten bytes and sends five: the client must not wait for the rest."""
    response = Response(app_iter=[b"12345"])
    response.content_length = 10
    return response


async def long(request):
    """Announces five bytes and sends ten: only five may go out."""
    response = Response(app_iter=[b"1234567890"])
    response.content_length = 5
    return response


async def echo(request):
    return Response(body=request.body)


async def slow(request):
    """Waits until cancelled (its client leaving cancels it)."""
    note("slow started")
    try:
        await asyncio.sleep(30)
    finally:
        note("slow unwound")
    return Response("late")


def main(global_config=None, **settings):
    config = Configurator(settings=settings)
    config.include("aiopyramid")
    for view in (hello, no_content, not_modified, stream, short, long, echo, slow):
        config.add_route(view.__name__, f"/{view.__name__}")
        config.add_view(view, route_name=view.__name__)
    return config.make_wsgi_app()


#: Bodies past 1,000 bytes are refused (413) by the worker itself.
app = main(**{"aiopyramid.max_body_size": "1000"})
