"""Tweens of the test applications.

A module of their own: ``add_tween`` takes dotted names, and an application
built when its module is imported cannot name its own module's objects yet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiopyramid.helpers import synchronize


@synchronize
async def _stamp() -> str:
    await asyncio.sleep(0.01)
    return "waited"


def stamping_tween_factory(handler: Any, registry: Any) -> Any:
    """A tween that waits for a coroutine before and after the view."""

    def stamping_tween(request: Any) -> Any:
        before = _stamp()
        response = handler(request)
        response.headers["X-Tween"] = f"{before}/{_stamp()}"
        return response

    return stamping_tween


def arrivals_tween_factory(handler: Any, registry: Any) -> Any:
    """A tween logging each request's arrival (logger ``tests.apps.arrivals``).

    Over pyramid_debugtoolbar's tween, it logs before the toolbar (and its
    profiler's lock) sees the request.
    """
    log = logging.getLogger("tests.apps.arrivals")

    def arrivals_tween(request: Any) -> Any:
        log.info("%s arrived", request.params.get("name", request.path))
        return handler(request)

    return arrivals_tween
