"""pyramid_debugtoolbar in front of coroutine views, under AsyncGunicornWorker.

What the views log, and each request's arrival, also goes to the server's
log (its stderr), for the tests to wait on.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.tweens import INGRESS

log = logging.getLogger("tests.apps.toolbar")
# Records of tests.apps.* (the arrivals tween's too) also go to stderr.
logging.getLogger("tests.apps").addHandler(logging.StreamHandler(sys.stderr))
PAGE = "<html><head><title>{0}</title></head><body><p>{0}</p></body></html>"


async def page(request):
    """An HTML page from a coroutine view, logging before and after a wait."""
    name = request.params.get("name", "page")
    log.warning("before the wait in %s", name)
    await asyncio.sleep(float(request.params.get("s", "0")))
    log.warning("after the wait in %s", name)
    return Response(PAGE.format(name))


def plain_page(request):
    """An HTML page from a plain view, logging from its executor thread."""
    name = request.params.get("name", "plain")
    log.warning("in the thread of %s", name)
    return Response(PAGE.format(name))


async def ahello(request):
    """A quick answer, to see that the worker is serving."""
    return Response("Hello coroutine", content_type="text/plain")


def main(global_config=None, **settings):
    """The toolbar application (toolbar included after aiopyramid)."""
    settings.setdefault("debugtoolbar.hosts", "127.0.0.1")
    settings.setdefault("debugtoolbar.max_request_history", "1000")
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        config.include("pyramid_debugtoolbar")
        config.add_tween("tests.apps.tweens.arrivals_tween_factory", under=INGRESS)
        for name, view in {"page": page, "plain": plain_page, "ahello": ahello}.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
    logging.getLogger("tests").setLevel(logging.INFO)
    return config.make_wsgi_app()


app = main()
