"""Soak: a minute of mixed load against one AsyncGunicornWorker, on loopback.

Run: ``python bench/soak.py`` (``--seconds`` to change the minute).  Starts
gunicorn with the harness's faults application on a free loopback port and
drives it from this process with the harness's mixed load (the leak test's
client, ``tests/harness/mixed_load.py``): coroutine and executor views,
exception views and 500s, traversal, uploads, clients leaving mid-request
and websocket conversations.  Prints the failures (there must be none), the
p99 latency, and the worker's memory and live greenlets, tasks and threads
before and after.  Exits non-zero on any failure, on anything left alive,
or if memory grew by 10% or more.  Bounded: every request has a timeout and
the server is stopped (killed if it lingers) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import mixed_load
from tests.harness.mixed_load import settled
from tests.harness.servers import free_port, gunicorn_command, running


def main() -> int:
    """Run the soak and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    port = free_port()
    command = gunicorn_command(
        "--bind", f"127.0.0.1:{port}", "tests.harness.faults_app:main()"
    )
    with running(command, port):
        warm = asyncio.run(
            mixed_load.run(port, total=3000, connections=args.connections)
        )
        # Once the warm-up's departed clients are unwound.  Idle, the worker
        # runs three tasks: gunicorn's serving loop, the lifespan, and the
        # connection of /counts itself (its request runs on that task).
        start = settled(port, {"greenlets": 1, "tasks": 3})
        began = time.monotonic()
        stats = asyncio.run(
            mixed_load.run(port, seconds=args.seconds, connections=args.connections)
        )
        took = time.monotonic() - began
        end = settled(port, start)

    growth = (end["rss"] - start["rss"]) / start["rss"] * 100
    print(f"soak: {took:.1f} s of mixed load, {args.connections} connections")
    print(
        f"  jobs: {stats.total} ({stats.ok} requests, {stats.disconnects} "
        f"clients leaving mid-request, {stats.websockets} websockets)"
    )
    print(f"  failed: {len(stats.failures) + len(warm.failures)}")
    for failure in (warm.failures + stats.failures)[:10]:
        print(f"    {failure}")
    print(f"  throughput: {stats.total / took:.0f} jobs/s")
    print(f"  p99 latency: {stats.p99_ms():.1f} ms")
    print(
        f"  worker RSS: {start['rss'] / 2**20:.1f} MiB -> "
        f"{end['rss'] / 2**20:.1f} MiB ({growth:+.1f}%)"
    )
    for key in ("greenlets", "tasks", "threads"):
        print(f"  live {key}: {start[key]} -> {end[key]}")
    leftovers = any(start[key] != end[key] for key in ("greenlets", "tasks", "threads"))
    failed = bool(stats.failures or warm.failures)
    return 1 if failed or leftovers or growth >= 10 else 0


if __name__ == "__main__":
    sys.exit(main())
