"""Soak: a minute of mixed load against one AsyncGunicornWorker, on loopback.

Run: ``python bench/soak.py`` (``--seconds`` to change the minute).  Starts
gunicorn with ``tests.apps.faults`` on a free loopback port and drives it
from this process with :mod:`bench.mixed_load`: coroutine and executor views,
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
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import mixed_load  # noqa: E402

WORKER = "aiopyramid.gunicorn.worker.AsyncGunicornWorker"


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def counts(port: int) -> dict:
    """The worker's live greenlets, tasks, threads and RSS (its /counts view)."""
    url = f"http://127.0.0.1:{port}/counts"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)  # type: ignore[no-any-return]


def settled(port: int, baseline: dict, timeout: float = 10) -> dict:
    """/counts once the clients that left have been unwound (or after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        now = counts(port)
        if (now["greenlets"], now["tasks"]) == (
            baseline["greenlets"],
            baseline["tasks"],
        ) or (time.monotonic() > deadline):
            return now
        time.sleep(0.2)


def wait_ready(
    port: int, process: subprocess.Popen[bytes], timeout: float = 20
) -> None:
    """Wait until the server accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def main() -> int:
    """Run the soak and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="aiopyramid-soak-", suffix=".log")  # noqa: SIM115
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            WORKER,
            "--workers",
            "1",
            "--no-control-socket",
            "--bind",
            f"127.0.0.1:{port}",
            "tests.apps.faults:main()",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        wait_ready(port, server)
        warm = asyncio.run(
            mixed_load.run(port, total=3000, connections=args.connections)
        )
        time.sleep(0.5)
        start = settled(port, {"greenlets": 1, "tasks": 2})
        began = time.monotonic()
        stats = asyncio.run(
            mixed_load.run(port, seconds=args.seconds, connections=args.connections)
        )
        took = time.monotonic() - began
        end = settled(port, start)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

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
