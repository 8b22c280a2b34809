"""The tutorial-shaped app (:mod:`tests.apps.wiki`) under load, through the real
worker: SQLAlchemy's sync API on asyncio drivers in each ``aiopyramid.mode``,
a pool much smaller than the requests in flight, and a loop that never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine

from tests.apps import wiki
from tests.harness.raw_http import raw_get, raw_post
from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    running,
    wait_until,
)

pytestmark = [pytest.mark.server, pytest.mark.database]
httpx = import_required("httpx")


@contextlib.contextmanager
def wiki_worker(url: str, mode: str, **env: str) -> Iterator[object]:
    """The wiki on ``url`` in ``mode`` under one AsyncGunicornWorker."""
    port = free_port()
    command = gunicorn_command(
        "--bind", f"127.0.0.1:{port}", "tests.apps.wiki:from_environment()"
    )
    environment = {"WIKI_URL": url, "WIKI_MODE": mode, **env}
    with running(command, port, env=environment) as process:
        yield process


def sqlite_urls(tmp_path) -> tuple[str, str]:
    """The app's aiosqlite URL and the sync URL of the same file, tables made."""
    path = tmp_path / "wiki.sqlite"
    sync = create_engine(f"sqlite:///{path}")
    wiki.create_tables(sync)
    sync.dispose()
    return f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}"


async def burst(port: int, targets: list[str], user: str = "ada") -> list[int]:
    """Send the targets 5 ms apart, each on its own connection; their statuses.

    Each waits for a pool connection longer than the 1 s they take to
    arrive, so nearly all are in flight together; arriving apart, they
    measure what the waiting costs the loop, not how long it takes to take
    200 requests in at once.
    """
    headers = {"X-User": user}

    async def one(number: int, target: str) -> int:
        await asyncio.sleep(number * 0.005)  # the input: arrivals 5 ms apart
        status, _ = await raw_get(port, target, headers=headers)
        return status

    return list(await asyncio.gather(*map(one, range(len(targets)), targets)))


def load(process, targets: list[str]) -> tuple[list[int], float, str]:
    """The burst's statuses, the loop's worst lag meanwhile and the connections
    still checked out after it."""
    url = process.url
    httpx.get(url + "/lag", timeout=10 * UNIT)  # starts measuring
    statuses = asyncio.run(burst(process.port, targets))
    worst = float(httpx.get(url + "/lag", timeout=10 * UNIT).text)
    checked_out = httpx.get(url + "/pool", timeout=10 * UNIT).text
    return statuses, worst, checked_out


#: A request that holds its connection 0.1 s in the database, one whose
#: route factory and policy query before a plain view, and one whose factory
#: queries before a coroutine view that queries and awaits.
MIXED = ["/sleep?s=0.1", "/page/FrontPage", "/async/FrontPage"]
#: In the executor mode, requests whose factory takes the connection on the
#: loop: a plain view taking its first one on a pool thread could wait for
#: connections held by requests that wait for that thread.
FACTORY_FIRST = ["/page/FrontPage", "/async/FrontPage"]


@pytest.mark.parametrize(
    ("mode", "targets"),
    [("greenlet", MIXED), ("executor", FACTORY_FIRST), ("thread", MIXED)],
)
def test_two_hundred_requests_share_five_aiosqlite_connections(tmp_path, mode, targets):
    """200 concurrent requests whose route factory, policy and views query
    through the sync session on aiosqlite, against a pool of 5: no error, and
    the loop never stalls more than 100 ms."""
    url, _ = sqlite_urls(tmp_path)
    with wiki_worker(url, mode, WIKI_POOL="5") as process:
        statuses, worst, checked_out = load(process, (targets * 100)[:200])
    assert statuses == [200] * 200
    assert worst < 0.1, f"the loop stalled {worst * 1000:.0f} ms"
    assert checked_out == "0"


# -- PostgreSQL ----------------------------------------------------------------


@pytest.fixture
def database(postgres, postgres_database):
    """The module's PostgreSQL database with the wiki's tables made afresh."""
    sync = create_engine(postgres.url(postgres_database, "psycopg"))
    wiki.create_tables(sync)
    sync.dispose()
    return postgres_database


@pytest.mark.parametrize(
    ("mode", "driver", "targets"),
    [
        ("greenlet", "asyncpg", MIXED),
        ("greenlet", "psycopg_async", MIXED),
        ("executor", "asyncpg", FACTORY_FIRST),
        ("thread", "psycopg", MIXED),  # a blocking driver, on pool threads
    ],
)
def test_two_hundred_requests_share_five_postgresql_connections(
    postgres, database, mode, driver, targets
):
    """The same 200 requests on PostgreSQL (pg_sleep holds each connection
    0.1 s): no error, the loop never stalls more than 100 ms, and the pool is
    whole after them."""
    url = postgres.url(database, driver)
    with wiki_worker(url, mode, WIKI_POOL="5") as process:
        statuses, worst, checked_out = load(process, (targets * 100)[:200])
    assert statuses == [200] * 200
    assert worst < 0.1, f"the loop stalled {worst * 1000:.0f} ms"
    assert checked_out == "0"


def test_a_client_leaving_mid_query_cancels_it_and_rolls_back(postgres, database):
    """The query of a request whose client leaves is cancelled on the server,
    its transaction rolled back and its connection back in the pool."""
    url = postgres.url(database, "asyncpg")

    def sleeping() -> list[str]:
        return postgres.sql(
            database,
            "select pid from pg_stat_activity "
            "where query like 'select pg_sleep%' and state = 'active'",
        ).split()

    with wiki_worker(url, "greenlet") as process:
        with socket.create_connection(("127.0.0.1", process.port)) as sock:
            sock.sendall(b"GET /sleep?s=60&add=Gone HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_until(sleeping, 10)
        # The client is gone: the worker cancels the request, asyncpg the query.
        wait_until(lambda: not sleeping(), 10)
        wait_until(lambda: httpx.get(process.url + "/pool").text == "0", 10)
        assert httpx.get(process.url + "/page/FrontPage").status_code == 200
    assert (
        postgres.sql(database, "select count(*) from pages where name = 'Gone'") == "0"
    )


def test_an_invalidated_asyncpg_connection_mid_request(postgres, database):
    """A request that invalidates its asyncpg connection goes on and answers,
    and the pool gives the next requests working connections."""
    url = postgres.url(database, "asyncpg")
    with wiki_worker(url, "greenlet") as process:
        answers = [httpx.get(process.url + "/invalidate") for _ in range(3)]
        page = httpx.get(process.url + "/page/FrontPage")
        log = process.log()
    assert [a.text for a in answers] == ["after invalidation: 42"] * 3
    assert page.status_code == 200
    assert "Traceback" not in log


def test_pyramid_retry_retries_a_serialization_failure(postgres, database):
    """Two SERIALIZABLE increments of one row at once: PostgreSQL refuses one,
    pyramid_retry runs it again, and both end committed, one after the other."""
    url = postgres.url(database, "psycopg_async")

    async def both(port: int) -> list[bytes]:
        calls = [raw_post(port, "/increment?s=0.5") for _ in range(2)]
        return [body for _, body in await asyncio.gather(*calls)]

    with wiki_worker(url, "greenlet") as process:
        answers = sorted(asyncio.run(both(process.port)))
    assert answers == [b"1 at attempt 0", b"2 at attempt 1"]
    assert postgres.sql(database, "select value from counters") == "2"
    rows = postgres.sql(database, "select value, attempt from increments order by id")
    assert rows.split() == ["1|0", "2|1"]


def test_a_savepoint_and_a_unique_violation(postgres, database):
    """A savepoint rolls back only what came after it; a unique violation is
    answered 409 by the app's exception view, and its transaction rolled back."""
    url = postgres.url(database, "asyncpg")
    with wiki_worker(url, "greenlet") as process:
        kept = httpx.post(process.url + "/twice/Twice")
        refused = httpx.post(process.url + "/add/FrontPage?first=Fresh")
        checked_out = httpx.get(process.url + "/pool").text
    assert kept.text == "kept the first Twice"
    assert refused.status_code == 409
    # asyncpg's UniqueViolationError as SQLAlchemy 2.1 hands it on; 2.0 wraps it
    assert refused.text in (
        "conflict: UniqueViolationError",
        "conflict: IntegrityError",
    )
    names = postgres.sql(database, "select name from pages order by id").split()
    assert names == ["FrontPage", "Twice"]  # no Fresh, no second Twice
    assert checked_out == "0"


def test_a_statement_timeout_is_a_clean_500(postgres, database):
    """A query past its statement_timeout: a 500, logged, and the pool whole."""
    url = postgres.url(database, "asyncpg")
    with wiki_worker(url, "greenlet") as process:
        answer = httpx.get(process.url + "/slow_query?ms=100", timeout=10 * UNIT)
        checked_out = httpx.get(process.url + "/pool").text
        after = httpx.get(process.url + "/page/FrontPage")
        wait_until(lambda: "due to statement timeout" in process.log())
    assert answer.status_code == 500
    assert checked_out == "0"
    assert after.status_code == 200


def test_postgresql_restarted_under_load(postgres, database):
    """PostgreSQL restarted while 50 requests wait in it: those fail cleanly
    (500, within their timeout), the pool recovers and the next ones succeed."""
    url = postgres.url(database, "asyncpg")

    def in_flight() -> int:
        return int(
            postgres.sql(
                database,
                "select count(*) from pg_stat_activity "
                "where query like 'select pg_sleep%' and state = 'active'",
            )
        )

    async def load_and_restart(port: int) -> list[int]:
        calls = [asyncio.ensure_future(raw_get(port, "/sleep?s=30")) for _ in range(50)]
        await asyncio.to_thread(wait_until, lambda: in_flight() == 50, 15)
        await asyncio.to_thread(postgres.restart)
        done = await asyncio.wait_for(asyncio.gather(*calls), 15 * UNIT)
        return [status for status, _ in done]

    with wiki_worker(url, "greenlet", WIKI_POOL="50") as process:
        statuses = asyncio.run(load_and_restart(process.port))
        after = [httpx.get(process.url + "/page/FrontPage") for _ in range(10)]
        checked_out = httpx.get(process.url + "/pool").text
    assert statuses == [500] * 50
    assert [a.status_code for a in after] == [200] * 10
    assert checked_out == "0"


def test_five_hundred_requests_wait_for_five_connections_on_the_loop(
    postgres, database
):
    """500 requests against a pool of 5 wait for it on the loop: no error,
    and a view that needs no connection answers meanwhile, nine times in ten
    within 50 ms."""
    url = postgres.url(database, "asyncpg")

    def health(url: str, done: threading.Event) -> list[float]:
        """/health's latencies, on a kept-alive connection of a thread's own
        (the load's client shares no loop with it)."""
        latencies = []
        with httpx.Client(timeout=10 * UNIT) as client:
            client.get(url + "/health")  # the connection, made before the load
            while not done.wait(0.05):
                started = time.monotonic()
                assert client.get(url + "/health").text == "ok"
                latencies.append(time.monotonic() - started)
        return latencies

    async def main(port: int, url: str) -> tuple[list[int], list[float]]:
        done = threading.Event()
        watching = asyncio.ensure_future(asyncio.to_thread(health, url, done))
        try:
            statuses = await burst(port, ["/sleep?s=0.05"] * 500)
        finally:
            done.set()
        return statuses, await watching

    with wiki_worker(url, "greenlet", WIKI_POOL="5") as process:
        statuses, latencies = asyncio.run(main(process.port, process.url))
    assert statuses == [200] * 500
    assert len(latencies) > 20  # the load lasted (500 x 0.05 s / 5 = 5 s)
    # Were the waits blocking the loop, /health would wait with them, for the
    # pool's 30 s timeout; a busy machine may delay one answer now and then.
    latencies.sort()
    assert latencies[-1] < 1, f"/health took {latencies[-1] * 1000:.0f} ms"
    nine_in_ten = latencies[len(latencies) * 9 // 10]
    assert nine_in_ten < 0.05, f"/health's p90: {nine_in_ten * 1000:.0f} ms"


def test_the_freeze_of_a_blocking_driver_is_named_while_it_lasts(postgres, database):
    """The freeze the modes exist for: a sync driver in a security policy and a
    route factory, in the default mode, with more requests than connections.
    The loop's thread waits in SQLAlchemy's pool for connections that only
    the loop can give back; the watchdog logs, while it waits, the query's
    stack and the setting that fixes it.  The thread mode serves the load."""
    url = postgres.url(database, "psycopg")
    limits = {"WIKI_POOL": "2", "WIKI_POOL_TIMEOUT": "3", "WIKI_THREADS": "2"}
    with wiki_worker(url, "executor", **limits) as process:
        statuses = asyncio.run(burst(process.port, ["/page/FrontPage"] * 8))
        wait_until(lambda: "free again" in process.log(), 10)
        log = process.log()
    warning = log[log.index("the event loop has been held") :]
    # pyramid_tm asks for the user first: the policy's lookup is what waits,
    # or the route factory's query, whichever came first.
    assert ", in identity\n" in warning or ", in page_factory\n" in warning
    assert "_do_get" in warning  # SQLAlchemy's pool, waiting
    assert "aiopyramid.mode = thread" in warning
    assert 500 in statuses  # the pool's timeout, while the loop could not run
    with wiki_worker(url, "thread", **limits) as process:
        statuses = asyncio.run(burst(process.port, ["/page/FrontPage"] * 8))
        log = process.log()
    assert statuses == [200] * 8
    assert "the event loop has been held" not in log
