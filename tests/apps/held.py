"""A view that holds the loop until the test lets it go (test_keepalive.py).

``/hold`` writes the file ``AIOPYRAMID_TEST_HOLD`` names, then blocks the
loop (on purpose) until that file is removed; ``/hello`` answers at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pyramid.config import Configurator
from pyramid.response import Response


async def hold(request):
    """Hold the loop until the test removes the marker file."""
    marker = Path(os.environ["AIOPYRAMID_TEST_HOLD"])
    marker.write_text("holding")
    while marker.exists():
        time.sleep(0.01)  # blocking: the point is that nothing else runs
    return Response("released")


async def hello(request):
    """Answer at once."""
    return Response("hello")


def main(global_config=None, **settings):
    """The held application."""
    settings.setdefault("aiopyramid.watchdog.seconds", "0")
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        for view in (hold, hello):
            config.add_route(view.__name__, f"/{view.__name__}")
            config.add_view(view, route_name=view.__name__)
    return config.make_wsgi_app()
