"""The serving application under granian's RSGI interface, with views of its own.

Its settings come from the environment, so that each test server can set
the adapter's limits: ``AIOPYRAMID_TEST_RSGI`` holds a JSON object of
:func:`aiopyramid.rsgi.make_rsgi_app` options.  ``/events-seen`` reports what
the views recorded (one worker per test server).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from pyramid.response import FileResponse, Response

from aiopyramid.exceptions import ClientDisconnected
from aiopyramid.rsgi import make_rsgi_app
from tests.apps.serving import EVENTS, make_config

#: A file that /file serves through wsgi.file_wrapper.
FILE = Path(__file__).with_name("attacks.py")

logging.basicConfig(
    stream=sys.stderr,
    level=logging.INFO,
    format="%(name)s %(levelname)s %(message)s",
)


async def wait(request):
    """Wait ``s`` seconds; note how the wait ended."""
    EVENTS.append("wait-started")
    try:
        await asyncio.sleep(float(request.params.get("s", "30")))
    except ClientDisconnected:
        EVENTS.append("wait-disconnected")
        raise
    except asyncio.CancelledError:
        EVENTS.append("wait-cancelled")
        raise
    return Response("waited")


def file_view(request):
    """A file, sent through wsgi.file_wrapper (granian's response_file)."""
    EVENTS.append(f"file-wrapper:{'wsgi.file_wrapper' in request.environ}")
    return FileResponse(str(FILE), request=request, content_type="text/plain")


async def afile(request):
    """The same from a coroutine view, which runs on the loop."""
    EVENTS.append(f"file-wrapper:{'wsgi.file_wrapper' in request.environ}")
    return FileResponse(str(FILE), request=request, content_type="text/plain")


async def endless(request):
    """A body that never ends, produced as fast as it is taken."""

    def chunks():
        try:
            chunk = b"x" * 65536
            while True:
                yield chunk
        finally:
            EVENTS.append("endless-closed")

    return Response(app_iter=chunks(), content_type="application/octet-stream")


def crlf(request):
    """A header that would split the response: never sent."""
    response = Response("evil")
    response.headers["X-Evil"] = "a\r\nSet-Cookie: evil=1"
    return response


async def seen(request):
    """What the views recorded so far."""
    return Response(json.dumps({"events": EVENTS, "pid": os.getpid()}))


def main() -> object:
    """The WSGI application with the RSGI test views."""
    config = make_config({"aiopyramid.access_log": "true"})
    for name, view in {
        "wait": wait,
        "file": file_view,
        "afile": afile,
        "endless": endless,
        "crlf": crlf,
        "events-seen": seen,
    }.items():
        config.add_route(name, f"/{name}")
        config.add_view(view, route_name=name)
    return config.make_wsgi_app()


app = main()
#: The RSGI application, for ``granian --interface rsgi tests.apps.rsgi:application``.
application = make_rsgi_app(
    app, **json.loads(os.environ.get("AIOPYRAMID_TEST_RSGI") or "{}")
)
