"""Fixtures shared by the unit tests: a real event loop and small Pyramid apps."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from typing import Any

import greenlet
import pytest
from pyramid.config import Configurator
from webob import Request

from aiopyramid.helpers import spawn_greenlet


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop, closed (with its default executor) afterwards."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Callable[[Any], Any]:
    """Run a coroutine to completion on the test's loop."""
    return loop.run_until_complete


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
        if isinstance(g, SpawnedGreenlet) and not g.dead and id(g) not in idle
    ]


@pytest.fixture(autouse=True, scope="session")
def nothing_left_behind() -> Iterator[None]:
    """After the whole run, no spawned greenlet is still alive."""
    yield
    leftovers = live_spawned_greenlets()
    assert not leftovers, f"greenlets left alive: {leftovers}"
