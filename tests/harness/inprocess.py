"""Small Pyramid applications driven in process, on the test's own loop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import greenlet
from pyramid.config import Configurator
from webob import Request

from aiopyramid.helpers import spawn_greenlet
from tests.harness.servers import UNIT


def make_app(setup: Callable[[Configurator], None], **settings: Any) -> Any:
    """A WSGI app with aiopyramid included, configured by ``setup``."""
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        setup(config)
    return config.make_wsgi_app()


async def get(app: Any, path: str, **kwargs: Any) -> Any:
    """Send a blank request for ``path`` through ``app`` in a child greenlet."""
    request = Request.blank(path, **kwargs)
    return await spawn_greenlet(request.get_response, app)


def live_spawned_greenlets() -> list[greenlet.greenlet]:
    """Child greenlets still busy with a job (idle pooled ones are fine)."""
    from aiopyramid._greenlets import SpawnedGreenlet, idle_greenlets

    gc.collect()
    idle = {id(g) for g in idle_greenlets()}
    return [
        g
        for g in gc.get_objects()
        # type, not isinstance: a pool thread keeps its ThreadGreenlet.
        if type(g) is SpawnedGreenlet and not g.dead and id(g) not in idle
    ]


async def next_messages(subscription: Any, count: int, seconds: float = 5) -> list[Any]:
    """The next ``count`` messages of a broadcast subscription.

    Fails when one of them takes more than ``seconds`` (times UNIT) to come:
    the bound is per message, so that many messages need no faster machine.
    """
    return [
        await asyncio.wait_for(subscription.__anext__(), seconds * UNIT)
        for _ in range(count)
    ]
