"""Fixtures shared by the tests: a real loop, a real database, nothing left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.inprocess import live_spawned_greenlets
from tests.harness.postgres import PostgresServer, database_name


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the run, started when a test first asks."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def postgres_database(
    request: pytest.FixtureRequest, postgres: PostgresServer
) -> Iterator[str]:
    """A fresh database of the test module's own, named after it, dropped afterwards."""
    name = postgres.create_database(database_name(request.module.__name__))
    yield name
    postgres.drop_database(name)
