"""Fixtures shared by the tests: a real event loop, and nothing left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.inprocess import live_spawned_greenlets


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


@pytest.fixture(autouse=True, scope="session")
def nothing_left_behind() -> Iterator[None]:
    """After the whole run, no spawned greenlet is still alive."""
    yield
    leftovers = live_spawned_greenlets()
    assert not leftovers, f"greenlets left alive: {leftovers}"
