"""Requests/s of a hello app under uWSGI's asyncio + greenlet plugins.

Run: ``python bench/uwsgi.py`` (needs Debian's uWSGI packages, ``wrk`` and
``taskset``; builds ``.uwsgi-venv/`` on first use).  The same hello app runs
under the same uWSGI configuration (one worker, ``asyncio = 50``, greenlet)
three ways: a coroutine view through aiopyramid, a plain view through
aiopyramid (run in the executor), and the plain view with Pyramid alone.
uWSGI is pinned to one core and ``wrk`` to the other; each flavour is
measured in alternating rounds; medians are reported, and the target is
judged on the median of each round's ratio.  Target: the coroutine view
reaches at least 0.9x the requests/s of Pyramid alone.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.uwsgi_apps.server import UWSGIServer, missing_uwsgi, uwsgi_venv

FLAVOURS = {
    "coroutine view (aiopyramid)": "coroutine_app",
    "plain view (aiopyramid)": "plain_app",
    "Pyramid alone": "pyramid_app",
}
BASELINE = "Pyramid alone"
TARGET = 0.9
EXTRA_INI = "disable-logging = true\nadd-header = Connection: close\n"


def wrk(url: str, seconds: int, connections: int, cpu: int) -> tuple[float, float]:
    """Load ``url`` with wrk pinned to ``cpu``: requests/s and p99 in ms."""
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
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    if rate is None or p99 is None or "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk reported errors or nothing:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rate.group(1)), float(p99.group(1)) * scale


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
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in FLAVOURS}
    with tempfile.TemporaryDirectory() as logs:
        for _ in range(args.rounds):
            for name, app in FLAVOURS.items():
                server = UWSGIServer(
                    f"bench.uwsgi_hello:{app}",
                    Path(logs) / f"{app}.log",
                    venv,
                    cpu=0,
                    # The asyncio plugin closes every connection after one
                    # response (even on an http11-socket): saying so lets
                    # wrk reconnect instead of counting read errors.
                    extra_ini=EXTRA_INI,
                )
                with server.running():
                    wrk(server.url + "/", 1, args.connections, cpu=1)  # warm up
                    results[name].append(
                        wrk(server.url + "/", args.seconds, args.connections, cpu=1)
                    )
    load = os.getloadavg()[0]
    baseline = statistics.median(rate for rate, _ in results[BASELINE])
    print(
        f"uWSGI asyncio={50} + greenlet, 1 worker on CPU 0; wrk -t1 "
        f"-c{args.connections} on CPU 1; median of {args.rounds} x {args.seconds:g} s"
    )
    print(
        f"load average before {load_before:.2f}, after {load:.2f} "
        "(anything else running makes the rounds disagree: rerun then)"
    )
    print(f"{'flavour':<30} {'req/s':>9} {'p99 ms':>8} {'ratio':>6}   rounds (req/s)")
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        rounds = " ".join(f"{r:.0f}" for r, _ in runs)
        print(f"{name:<30} {rate:>9.0f} {p99:>8.2f} {rate / baseline:>6.2f}   {rounds}")
    # Each round measures the flavours back to back: the ratio within a round
    # resists slow changes in background load better than ratio of medians.
    paired = [
        coroutine / alone
        for (coroutine, _), (alone, _) in zip(
            results["coroutine view (aiopyramid)"], results[BASELINE], strict=True
        )
    ]
    ratio = statistics.median(paired)
    verdict = "met" if ratio >= TARGET else "missed"
    print(
        f"target: coroutine view >= {TARGET}x Pyramid alone: {verdict} "
        f"({ratio:.2f}x, median of the rounds' ratios "
        f"{' '.join(f'{r:.2f}' for r in paired)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
