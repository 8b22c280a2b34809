"""The hello application of ``bench/uwsgi.py``, in three flavours.

Loaded by uWSGI, one flavour per run (``module = bench.uwsgi_hello:<name>``):

* ``coroutine_app``: aiopyramid included, an ``async def`` view;
* ``plain_app``: aiopyramid included, a plain view (run in the executor);
* ``pyramid_app``: the same plain view, Pyramid alone (no aiopyramid).
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response

BODY = b"Hello, world!"


async def coroutine_hello(request: Any) -> Response:
    """Say hello from a coroutine view."""
    return Response(BODY, content_type="text/plain")


def plain_hello(request: Any) -> Response:
    """Say hello from a plain view."""
    return Response(BODY, content_type="text/plain")


def _make(view: Any, aiopyramid: bool) -> Any:
    with Configurator() as config:
        if aiopyramid:
            config.include("aiopyramid")
        config.add_route("hello", "/")
        config.add_view(view, route_name="hello")
    return config.make_wsgi_app()


coroutine_app = _make(coroutine_hello, aiopyramid=True)
plain_app = _make(plain_hello, aiopyramid=True)
pyramid_app = _make(plain_hello, aiopyramid=False)
