"""Requests/s, p99 and server CPU per request on PostgreSQL: aiopyramid's modes
and their peers.

Run: ``python bench/database.py`` (``--quick`` for a smoke run of a few
seconds a measurement; needs ``wrk`` from Debian, ``taskset``, PostgreSQL's
server binaries from ``apt-get install postgresql``, and ``pip install
aiopyramid[gunicorn,testing] starlette uvicorn httptools uvloop``).  A
throwaway PostgreSQL cluster (``tests/harness/postgres.py``, 300
connections) runs for the whole run, pinned to core 0 with ``wrk``; every
server runs one worker pinned to core 1, one server at a time.  Each request
is ``GET /page/1`` of ``bench/database_apps.py``: a route factory gets the
page by id through the ORM, then the view may wait in the database
(``select pg_sleep(S)``), in one transaction.  Measured in one run:

1. 1,000 connections, the query and a 50 ms ``pg_sleep``, a pool of 100 (no
   overflow): (a) ``AsyncGunicornWorker``, ``aiopyramid.mode = greenlet``,
   SQLAlchemy's plain sync API on ``postgresql+asyncpg``; (b) the same
   worker, ``aiopyramid.mode = thread`` on ``postgresql+psycopg`` (sync),
   100 threads; (c) Starlette on uvicorn (httptools, uvloop) with
   ``AsyncSession`` on asyncpg; (d) gunicorn ``gthread``, 100 threads, plain
   Pyramid on psycopg (issue 20);
2. the query alone at 50 connections: CPU per request of (a) and (c);
3. the same for (a) with the loop watchdog off (``aiopyramid.watchdog.seconds
   = 0``) and on (its default);
4. (a) at 1,000 connections with a 10 ms ``pg_sleep`` and pools of 5, 20 and
   100 (issue 21).

After its warm-up (at the measured concurrency) each server settles until
it is idle, and its pool is primed with as many slow requests at once as it
holds, all to their end: the warm-up ends with requests in flight, the
worker cancels those, and SQLAlchemy invalidates a connection whose query
was cancelled, which the measurement would otherwise pay to reopen.
Tables 2 and 3 alternate their servers over a few rounds and give each
figure's median.  CPU µs/request comes from the server processes' own
accounting (``/proc/<pid>/stat``, all the server's processes), PostgreSQL's
the same way; threads and RSS are the server's processes' at the end of the
measurement (gunicorn's arbiter included).  Targets: (a) at least 0.95 times
(c)'s requests/s with a p99 of at most 400 ms and no error; (a)'s CPU per
request at most 1.1 times (c)'s; the watchdog on at most 1.02 times off.
Loopback only; about five minutes (``--quick``: under a minute and a
half).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine

from bench.database_apps import create_tables
from bench.wrk import (
    BIN,
    TICKS,
    Column,
    answering,
    group_cpu,
    gunicorn_on,
    print_table,
    raise_fd_limit,
    ratio,
    require_wrk,
    start_pinned,
    stats,
    wrk,
    wrk_columns,
)
from bench.wrk import Result as WrkResult
from tests.harness.postgres import PostgresServer
from tests.harness.servers import WORKER, ServerProcess, free_port

DATABASE = "bench_database"
#: The servers' core, and the one wrk and PostgreSQL share.
SERVER_CORE, CLIENT_CORE = 1, 0
#: Issue 20's targets.
TARGET_RPS, TARGET_P99_MS, TARGET_CPU, TARGET_WATCHDOG = 0.95, 400.0, 1.1, 1.02


@dataclass
class Result(WrkResult):
    """One wrk run against one server, PostgreSQL's CPU and the server's memory."""

    pg_us: float
    threads: int
    rss_mib: float


def group_pids(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    # Field 5 of stat: the process group.
    return [pid for pid, fields in stats() if int(fields[2]) == pgid]


def on_cpu(pid: int) -> float:
    """Seconds process ``pid`` (one thread) has run, to the nanosecond.

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms), and a PostgreSQL
    backend serving one pool connection runs less than a tick between two
    readings: a hundred of them would lose up to a second.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:  # gone meanwhile
        return 0.0


def postgres_cpu(postmaster: int) -> float:
    """Seconds of CPU used by PostgreSQL: the postmaster and its children.

    Not its process group: each backend calls ``setsid()`` and leads a group
    of its own.  Backends that ended (a connection the pool replaced) count
    in the postmaster's figures for its reaped children.
    """
    total = 0.0
    for pid, fields in stats():
        if pid == postmaster:  # its reaped children: cutime + cstime
            total += on_cpu(pid) + (int(fields[13]) + int(fields[14])) / TICKS
        elif int(fields[1]) == postmaster:  # field 4 of stat: the parent
            total += on_cpu(pid)
    return total


def group_memory(pgid: int) -> tuple[int, float]:
    """Threads and MiB of RSS of every live process of process group ``pgid``."""
    threads, rss_kib = 0, 0
    for pid in group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in status:
            name, _, value = line.partition(":")
            if name == "Threads":
                threads += int(value)
            elif name == "VmRSS":
                rss_kib += int(value.split()[0])
    return threads, rss_kib / 1024


def commands(port: int) -> dict[str, list[str]]:
    """The command line of every server, by name."""
    gunicorn = gunicorn_on(port)
    return {
        "aiopyramid": [
            *gunicorn,
            "-k",
            WORKER,
            "bench.database_apps:from_environment()",
        ],
        "starlette": [
            str(BIN / "uvicorn"),
            *("--port", str(port), "--workers", "1"),
            *("--http", "httptools", "--loop", "uvloop"),
            *("--no-access-log", "--log-level", "warning"),
            *("--factory", "bench.database_apps:starlette_from_environment"),
        ],
        "gthread": [
            *gunicorn,
            *("-k", "gthread", "--threads", "100"),
            "bench.database_apps:wsgi_from_environment()",
        ],
    }


@dataclass
class Server:
    """What to start: a command of :func:`commands` and its ``BENCH_DB_*``."""

    command: str
    driver: str
    pool: int = 100
    mode: str | None = None
    threads: int | None = None
    watchdog: str | None = None

    def environment(self, pg: PostgresServer) -> dict[str, str]:
        """The server's environment: its database URL and settings."""
        env = {"BENCH_DB_URL": pg.url(DATABASE, self.driver)}
        env["BENCH_DB_POOL"] = str(self.pool)
        if self.mode is not None:
            env["BENCH_DB_MODE"] = self.mode
        if self.threads is not None:
            env["BENCH_DB_THREADS"] = str(self.threads)
        if self.watchdog is not None:
            env["BENCH_DB_WATCHDOG"] = self.watchdog
        return env


GREENLET = Server("aiopyramid", "asyncpg", mode="greenlet")
THREAD = Server("aiopyramid", "psycopg", mode="thread", threads=100)
STARLETTE = Server("starlette", "asyncpg")
GTHREAD = Server("gthread", "psycopg")

#: The four servers of issue 20, as the tables name them.
A = "(a) aiopyramid greenlet, asyncpg"
B = "(b) aiopyramid thread, psycopg, 100 threads"
C = "(c) Starlette, AsyncSession, asyncpg"
D = "(d) gunicorn gthread, 100 threads, psycopg"


def start(server: Server, label: str, pg: PostgresServer) -> ServerProcess | None:
    """Start ``server`` on a free port, pinned to the server's core.

    None if it is not installed (row ``label`` is skipped).
    """
    port = free_port()
    return start_pinned(
        label,
        commands(port)[server.command],
        port,
        SERVER_CORE,
        module="starlette" if server.command == "starlette" else None,
        env=server.environment(pg),
    )


def settle(pgid: int, timeout: float = 20) -> None:
    """Wait until the processes of ``pgid`` are idle (under 5% of a core).

    A wrk run ends with its requests in flight: a server that finishes them
    (or gunicorn ``gthread``, whose threads have a queue of them) must not
    do so in the next measurement.
    """
    deadline = time.monotonic() + timeout
    before = group_cpu(pgid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = group_cpu(pgid)
        if now - before < 0.025:
            return
        before = now


def prime(base: str, count: int) -> None:
    """``count`` requests at once, each waiting 0.2 s in the database, all to
    their end: the pool's connections open, each with its prepared statements.

    Without it the next measurement would open them: wrk's warm-up ends with
    requests in flight, and SQLAlchemy invalidates a connection whose query
    is cancelled (the worker cancels a request whose client left).
    """

    def fetch(_: int) -> int:
        with urllib.request.urlopen(f"{base}/page/1?sleep=0.2", timeout=60) as r:
            return int(r.status)

    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(fetch, range(count)))
    assert statuses == [200] * count, statuses


def measure(
    pg: PostgresServer,
    server: Server,
    label: str,
    path: str,
    connections: int,
    seconds: int,
    warm_up: int,
) -> Result | None:
    """Start ``server``, warm it up, load it, and return what wrk and /proc say.

    The warm-up runs at the measured concurrency; then the server settles and
    its pool is primed, so that the measurement starts on a whole pool and an
    idle server.
    """
    process = start(server, label, pg)
    if process is None:
        return None
    assert pg.process is not None
    postgres, pgid = pg.process.process.pid, process.process.pid
    with answering(process, path) as url:
        wrk(url, connections, warm_up, core=CLIENT_CORE)
        settle(pgid)
        prime(process.url, server.pool)
        cpu_before, pg_before = group_cpu(pgid), postgres_cpu(postgres)
        rps, p99, errors, requests = wrk(url, connections, seconds, core=CLIENT_CORE)
        cpu = group_cpu(pgid) - cpu_before
        pg_cpu = postgres_cpu(postgres) - pg_before
        threads, rss = group_memory(pgid)
    per_request = 1e6 / max(requests, 1)
    return Result(
        label, rps, p99, errors, cpu * per_request, pg_cpu * per_request, threads, rss
    )


def rounds(
    pg: PostgresServer,
    servers: dict[str, Server],
    path: str,
    connections: int,
    seconds: int,
    warm_up: int,
    count: int,
) -> dict[str, list[Result]]:
    """Measure ``servers`` (by label) in turn, ``count`` times: each one's runs.

    Alternating, each round measures the servers within a few seconds of
    each other: a burst of load from elsewhere on the machine moves one
    round's ratio, not the median of the rounds'.
    """
    runs: dict[str, list[Result]] = {label: [] for label in servers}
    for _ in range(count):
        for label, server in servers.items():
            result = measure(pg, server, label, path, connections, seconds, warm_up)
            if result is not None:
                runs[label].append(result)
    return runs


def median(results: list[Result]) -> Result:
    """Each figure's median over ``results`` (runs of one server)."""

    def middle(name: str) -> float:
        return statistics.median(getattr(r, name) for r in results)

    return replace(
        results[0],
        rps=middle("rps"),
        p99_ms=middle("p99_ms"),
        errors=sum(r.errors for r in results),
        cpu_us=middle("cpu_us"),
        pg_us=middle("pg_us"),
        threads=int(middle("threads")),
        rss_mib=middle("rss_mib"),
    )


def table(
    title: str,
    results: list[Result],
    *,
    reference: str | None = None,
    cpu_reference: str | None = None,
    cpu_label: str = "",
    memory: bool = False,
) -> None:
    """Print one table.

    With ``reference``, a column gives requests/s as a multiple of that
    server's (it is labelled with the reference's first word, such as
    ``(c)``); with ``cpu_reference``, one gives CPU per request as a multiple
    of that server's; with ``memory``, the server's threads and RSS.
    """
    by_name = {r.name: r for r in results}
    columns = [
        *wrk_columns(rps_width=7),
        Column("PG µs/req", 10, ".0f", lambda r: r.pg_us),
    ]
    if memory:
        columns += [
            Column("threads", 8, "", lambda r: r.threads),
            Column("RSS MiB", 8, ".1f", lambda r: r.rss_mib),
        ]
    if reference in by_name:
        ref = by_name[reference]
        heading = "req/s x " + ref.name.split()[0]
        columns.append(ratio(heading, 12, lambda r: r.rps, ref))
    if cpu_reference in by_name:
        cpu_ref = by_name[cpu_reference]
        columns.append(ratio("CPU x " + cpu_label, 11, lambda r: r.cpu_us, cpu_ref))
    print_table(title, results, 44, columns)


def target(
    what: str, figure: float, limit: float, at_most: bool, unit: str = "x"
) -> str:
    """One target line: the figure, the limit, met or missed."""
    met = figure <= limit if at_most else figure >= limit
    sign = "<=" if at_most else ">="
    shown = f"{figure:.2f}" if unit == "x" else f"{figure:.0f}"
    verdict = "met" if met else "MISSED"
    return f"  {what}: {shown}{unit} (target {sign} {limit:g}{unit}): {verdict}"


def prepare(pg: PostgresServer) -> None:
    """The database and its pages; PostgreSQL moved to the client's core.

    Its backends, forked for each server's pool, inherit the postmaster's
    affinity: the server's core is the server's alone.
    """
    pg.create_database(DATABASE)
    engine = create_engine(pg.url(DATABASE, "psycopg"))
    create_tables(engine)
    engine.dispose()
    assert pg.process is not None
    for pid in group_pids(pg.process.process.pid):
        os.sched_setaffinity(pid, {CLIENT_CORE})


def peers(pg: PostgresServer, args: argparse.Namespace) -> None:
    """1: the four servers at 1,000 connections, each request waiting 50 ms."""
    wait, s, w = "/page/1?sleep=0.05", args.seconds, args.warm_up
    servers = {A: GREENLET, B: THREAD, C: STARLETTE, D: GTHREAD}
    measured = [measure(pg, sv, name, wait, 1000, s, w) for name, sv in servers.items()]
    results = [r for r in measured if r]
    table(
        "1. query + pg_sleep(0.05), 1,000 connections, pool 100 (ideal 2,000 "
        "req/s, at which each request waits 500 ms)",
        results,
        reference=C,
        memory=True,
    )
    by_name = {r.name: r for r in results}
    a, c = by_name.get(A), by_name.get(C)
    print("issue 20's targets:")
    if a and c:
        print(target("(a) req/s x (c)", a.rps / c.rps, TARGET_RPS, False))
    if a:
        print(target("(a) p99", a.p99_ms, TARGET_P99_MS, True, " ms"))
        print(target("(a) errors", a.errors, 0, True, unit=""))


def compare(
    pg: PostgresServer,
    args: argparse.Namespace,
    title: str,
    servers: dict[str, Server],
    reference: tuple[str, str],
    what: str,
    limit: float,
) -> None:
    """2 and 3: the query alone at 50 connections, the servers in rounds, and
    the CPU per request of the other server as a multiple of ``reference``'s
    (its label in ``servers`` and in the column's title)."""
    runs = rounds(
        pg, servers, "/page/1", 50, args.round_seconds, args.warm_up, args.rounds
    )
    results = [median(results) for results in runs.values() if results]
    under, column = reference
    table(
        f"{title}, get by id, no sleep, 50 connections (medians of {args.rounds} "
        "rounds)",
        results,
        cpu_reference=under,
        cpu_label=column,
    )
    (over,) = (label for label in servers if label != under)
    if runs[under] and runs[over]:
        pairs = zip(runs[over], runs[under], strict=True)
        ratios = [o.cpu_us / u.cpu_us for o, u in pairs]
        each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        line = target(what, statistics.median(ratios), limit, True)
        print(f"{line} (median of the rounds' ratios: {each})")


def cpu(pg: PostgresServer, args: argparse.Namespace) -> None:
    """2: CPU per request of (a) and (c)."""
    servers = {A: GREENLET, C: STARLETTE}
    what = "(a) CPU/request x (c)"
    compare(pg, args, "2. CPU", servers, (C, "(c)"), what, TARGET_CPU)


def watchdog(pg: PostgresServer, args: argparse.Namespace) -> None:
    """3: (a) with the loop watchdog off and on."""
    off = "(a) watchdog off (seconds = 0)"
    servers = {
        off: replace(GREENLET, watchdog="0"),
        "(a) watchdog on (default)": GREENLET,
    }
    what = "watchdog on x off, CPU/request"
    compare(pg, args, "3. loop watchdog", servers, (off, "off"), what, TARGET_WATCHDOG)


def pools(pg: PostgresServer, args: argparse.Namespace) -> None:
    """4: (a) at 1,000 connections on pools of 5, 20 and 100, a 10 ms query."""
    short, s, w = "/page/1?sleep=0.01", args.seconds, args.warm_up
    measured = [
        measure(pg, replace(GREENLET, pool=size), f"(a) pool {size}", short, 1000, s, w)
        for size in (5, 20, 100)
    ]
    table(
        "4. (a) query + pg_sleep(0.01), 1,000 connections, worker_connections "
        "1,000, PostgreSQL max_connections 300 (ideal: 100 req/s per pooled "
        "connection)",
        [r for r in measured if r],
    )


def load_average() -> str:
    """The machine's load averages, for the record: other jobs move the figures."""
    return "load average " + ", ".join(f"{n:.2f}" for n in os.getloadavg())


def main() -> None:
    """Run the four parts and print their tables and targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds", type=int, default=10, help="length of each wrk run of 1 and 4"
    )
    parser.add_argument(
        "--round-seconds", type=int, default=5, help="length of each run of 2 and 3"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 2 and 3")
    parser.add_argument("--warm-up", type=int, default=3, help="seconds before each")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 1-2 s a measurement"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.round_seconds, args.rounds, args.warm_up = 2, 1, 1, 1
    require_wrk()
    raise_fd_limit()
    print(f"before: {load_average()}")
    with PostgresServer() as pg:
        prepare(pg)
        for part in (peers, cpu, watchdog, pools):
            part(pg, args)
    print(f"\nafter: {load_average()}")


if __name__ == "__main__":
    main()
