"""Requests/s of a hello app under uWSGI's asyncio + greenlet plugins.

Run: ``python bench/uwsgi.py`` (needs Debian's uWSGI packages, ``wrk`` and
``taskset``; builds ``.uwsgi-venv/`` on first use).  The same hello app runs
under the same uWSGI configuration (one worker, ``asyncio = 50``, greenlet)
three ways: a coroutine view through aiopyramid, a plain view through
aiopyramid (run in the executor), and the plain view with Pyramid alone.
uWSGI is pinned to one core and ``wrk`` to the other; each flavour is
measured in alternating rounds, and besides wrk's requests/s the script
reads uWSGI's own CPU time (``/proc/<pid>/stat``) to get CPU per request,
which the other load of a shared machine hardly moves.  Medians are
reported; the target is judged on the median of each round's ratio of CPU
per request.  Target: the coroutine view at least 0.9x the speed of
Pyramid alone (Pyramid alone's CPU per request / the coroutine view's).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.servers import serving
from tests.harness.uwsgi import missing_uwsgi, uwsgi_server, uwsgi_venv

FLAVOURS = {
    "coroutine view (aiopyramid)": "coroutine_app",
    "plain view (aiopyramid)": "plain_app",
    "Pyramid alone": "pyramid_app",
}
BASELINE = "Pyramid alone"
TARGET = 0.9
EXTRA_INI = "disable-logging = true\nadd-header = Connection: close\n"


class Round(NamedTuple):
    """One flavour's measurements in one round."""

    rate: float  # requests/s seen by wrk
    p99: float  # ms
    cpu: float  # µs of uWSGI CPU time (user + system, all threads) per request


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, connections: int, cpu: int) -> tuple[int, float, float]:
    """Load ``url`` with wrk pinned to ``cpu``: requests, requests/s, p99 in ms."""
    output = subprocess.run(
        [
            "taskset",
            "-c",
            str(cpu),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    count = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    if (
        count is None
        or rate is None
        or p99 is None
        or "Non-2xx" in output
        or "Socket errors" in output
    ):
        raise RuntimeError(f"wrk reported errors or nothing:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return int(count.group(1)), float(rate.group(1)), float(p99.group(1)) * scale


def main() -> int:
    """Measure every flavour and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)

    args = parser.parse_args()
    reason = missing_uwsgi()
    if reason is not None:
        sys.exit(reason)
    venv = uwsgi_venv()
    load_before = os.getloadavg()[0]
    results: dict[str, list[Round]] = {name: [] for name in FLAVOURS}
    with tempfile.TemporaryDirectory() as logs:
        for _ in range(args.rounds):
            for name, app in FLAVOURS.items():
                server = uwsgi_server(
                    f"bench.uwsgi_hello:{app}",
                    Path(logs) / f"{app}.log",
                    venv,
                    cpu=0,
                    # The asyncio plugin closes every connection after one
                    # response (even on an http11-socket): saying so lets
                    # wrk reconnect instead of counting read errors.
                    extra_ini=EXTRA_INI,
                )
                with serving(server, timeout=30):
                    wrk(server.url + "/", 1, args.connections, cpu=1)  # warm up
                    before = cpu_seconds(server.process.pid)
                    count, rate, p99 = wrk(
                        server.url + "/", args.seconds, args.connections, cpu=1
                    )
                    used = cpu_seconds(server.process.pid) - before
                    results[name].append(Round(rate, p99, used / count * 1e6))
    load = os.getloadavg()[0]
    print(
        f"uWSGI asyncio={50} + greenlet, 1 worker on CPU 0; wrk -t1 "
        f"-c{args.connections} on CPU 1; median of {args.rounds} x {args.seconds:g} s"
    )
    print(
        f"load average before {load_before:.2f}, after {load:.2f} "
        "(req/s suffer from anything else running; CPU per request much less)"
    )
    base_cpu = statistics.median(r.cpu for r in results[BASELINE])
    print(
        f"{'flavour':<30} {'req/s':>7} {'p99 ms':>7} {'CPU µs/req':>10} "
        f"{'speed':>6}   rounds (CPU µs/req)"
    )
    for name, runs in results.items():
        cpu = statistics.median(r.cpu for r in runs)
        print(
            f"{name:<30} {statistics.median(r.rate for r in runs):>7.0f} "
            f"{statistics.median(r.p99 for r in runs):>7.2f} {cpu:>10.0f} "
            f"{base_cpu / cpu:>6.2f}   {' '.join(f'{r.cpu:.0f}' for r in runs)}"
        )
    # Speed is Pyramid alone's CPU per request over the flavour's, both
    # measured in the same round: CPU time barely depends on what else the
    # machine runs, unlike requests/s on a shared two-core machine.
    paired = [
        alone.cpu / coroutine.cpu
        for coroutine, alone in zip(
            results["coroutine view (aiopyramid)"], results[BASELINE], strict=True
        )
    ]
    ratio = statistics.median(paired)
    verdict = "met" if ratio >= TARGET else "missed"
    print(
        f"target: coroutine view >= {TARGET}x the speed of Pyramid alone "
        f"(CPU per request): {verdict} ({ratio:.2f}x, median of the rounds' "
        f"ratios {' '.join(f'{r:.2f}' for r in paired)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
