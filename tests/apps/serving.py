"""A Pyramid application exercising the ASGI bridge and the gunicorn worker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import threading
import time

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.wsgi import wsgiapp

from aiopyramid.asgi import make_asgi_app

# Events the tests ask about afterwards (one worker per test server).
EVENTS: list[str] = []


def hello(request):
    """A plain view: runs in the executor."""
    return Response("Hello plain")


async def ahello(request):
    """A coroutine view: runs on the loop."""
    return Response("Hello coroutine")


async def sleep(request):
    """Wait on the loop without blocking it."""
    seconds = float(request.params.get("s", "1"))
    EVENTS.append("sleep-started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        EVENTS.append("sleep-cancelled")
        raise
    return Response(f"slept {seconds}")


def block(request):
    """Block a thread (plain view, in the executor)."""
    EVENTS.append("block-started")
    time.sleep(float(request.params.get("s", "1")))
    return Response("blocked")


def environ_view(request):
    """Show the environ's string values."""
    env = {k: v for k, v in request.environ.items() if isinstance(v, (str, bool))}
    env["wsgi.version"] = list(request.environ["wsgi.version"])
    env["thread"] = threading.current_thread().name  # where plain views run
    return Response(json.dumps(env).encode(), content_type="application/json")


async def upload(request):
    """Stream the body through, counting and hashing it."""
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = request.body_file.read(65536)
        if not chunk:
            break
        size += len(chunk)
        digest.update(chunk)
    return Response(
        json.dumps({"size": size, "sha256": digest.hexdigest(), "rss": rss()})
    )


def upload_plain(request):
    """Read the (seekable, spooled) body from an executor thread."""
    data = request.body_file
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: data.read(65536), b""):
        size += len(chunk)
        digest.update(chunk)
    return Response(
        json.dumps({"size": size, "sha256": digest.hexdigest(), "rss": rss()})
    )


def rss() -> int:
    """Peak resident memory of this process, in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_view(request):
    """Report peak memory and the events so far."""
    return Response(json.dumps({"rss": rss(), "events": EVENTS, "pid": os.getpid()}))


def stream(request):
    """A generated body of ``mb`` MiB, produced as it is sent."""
    megabytes = int(request.params.get("mb", "1"))
    started = time.monotonic()

    def chunks():
        try:
            chunk = b"x" * 65536
            for _ in range(megabytes * 16):
                yield chunk
            yield f"\nfinished after {time.monotonic() - started:.3f}".encode()
        finally:
            EVENTS.append("stream-closed")

    return Response(app_iter=chunks(), content_type="application/octet-stream")


def events(request):
    """Server-sent events from an async generator, streamed from the loop."""
    count = int(request.params.get("n", "3"))

    async def ticks():
        try:
            for number in range(count):
                yield f"data: tick {number}\n\n".encode()
                await asyncio.sleep(0.05)
        finally:
            EVENTS.append("events-closed")

    return Response(app_iter=ticks(), content_type="text/event-stream")


@wsgiapp
def legacy_write(environ, start_response):
    """A raw WSGI app using the write() callable."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"and ", b"returned"]


@wsgiapp
def legacy_input(environ, start_response):
    """A raw WSGI app reading wsgi.input line by line."""
    stream = environ["wsgi.input"]
    first = stream.readline()
    part = stream.read(3)
    second = stream.readline(4)
    rest = stream.readlines()
    start_response("200 OK", [("Content-Type", "application/json")])
    body = {
        "first": first.decode(),
        "part": part.decode(),
        "second": second.decode(),
        "rest": [line.decode() for line in rest],
    }
    return [json.dumps(body).encode()]


@wsgiapp
def legacy_iter_input(environ, start_response):
    """A raw WSGI app iterating over wsgi.input."""
    lines = [line.decode() for line in environ["wsgi.input"]]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(lines).encode()]


@wsgiapp
def legacy_exc_info(environ, start_response):
    """A raw WSGI app that replaces its headers after an error (PEP 3333)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("changed my mind")
    except ValueError:
        import sys

        start_response(
            "503 Service Unavailable", [("Retry-After", "7")], sys.exc_info()
        )
    return [b"try later"]


async def hog(request):
    """Block the loop itself (what never to do): the heartbeat stops."""
    time.sleep(float(request.params.get("s", "1")))
    return Response("hogged")


async def loop_kind(request):
    """Name the running loop's class."""
    loop = asyncio.get_running_loop()
    return Response(f"{type(loop).__module__}.{type(loop).__name__}")


def boom(request):
    """A view that fails."""
    raise RuntimeError("boom")


def make_config(settings: dict | None = None) -> Configurator:
    """The configuration shared by every server under test."""
    config = Configurator(settings=settings or {})
    config.include("aiopyramid")
    routes = {
        "hello": hello,
        "ahello": ahello,
        "sleep": sleep,
        "block": block,
        "environ": environ_view,
        "upload": upload,
        "upload_plain": upload_plain,
        "rss": rss_view,
        "stream": stream,
        "events": events,
        "write": legacy_write,
        "input": legacy_input,
        "iter_input": legacy_iter_input,
        "exc_info": legacy_exc_info,
        "boom": boom,
        "hog": hog,
        "loop": loop_kind,
    }
    for name, view in routes.items():
        config.add_route(name, f"/{name}")
        config.add_view(view, route_name=name)
    return config


def main(global_config, **settings):
    """Paste entry point (``use = call:tests.apps.serving:main``)."""
    config = make_config(settings)
    extra = os.environ.get("AIOPYRAMID_TEST_INCLUDE")
    if extra:
        config.include(extra)
    return config.make_wsgi_app()


#: The WSGI application, for ``gunicorn tests.apps.serving:app``.
app = main({}, **{"aiopyramid.max_body_size": str(60 * 2**20)})
#: The ASGI application, for ``uvicorn tests.apps.serving:asgi``.
asgi = make_asgi_app(
    app, max_body_size=int(os.environ.get("AIOPYRAMID_TEST_MAX_BODY", 60 * 2**20))
)
