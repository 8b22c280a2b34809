"""wrk against one server at a time, each pinned to a core of its own.

What ``bench/serving.py`` and ``bench/database.py`` share: starting a
server under ``taskset`` with file descriptors for 1,000 connections
(through the harness's :class:`~tests.harness.servers.ServerProcess`),
waiting until its workers answer, loading it with ``wrk``, the CPU its
process group used (``/proc/<pid>/stat``), and printing the results as a
table.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from tests.harness.servers import ROOT, ServerProcess, answers_http, serving, wait_until

#: Where this Python's console scripts (gunicorn, uvicorn, granian...) are.
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    """One wrk run against one server."""

    name: str
    rps: float
    p99_ms: float
    errors: int
    cpu_us: float


R = TypeVar("R", bound=Result)


def raise_fd_limit() -> None:
    """Let 1,000 connections (and their server) have file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def require_wrk() -> None:
    """Exit with what to install unless ``wrk`` and ``taskset`` are there."""
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("needs wrk and taskset: apt-get install -y wrk util-linux")


def stats() -> Iterator[tuple[int, list[str]]]:
    """Every live process and the fields of its ``/proc/<pid>/stat`` after its name."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        yield int(entry.name), line.rsplit(")", 1)[1].split()


def group_cpu(pgid: int) -> float:
    """Seconds of CPU used by every live process of process group ``pgid``."""
    total = 0
    for _, fields in stats():
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def gunicorn_on(port: int) -> list[str]:
    """gunicorn with one worker on ``127.0.0.1:port`` (``-k`` and the app to add)."""
    bind = f"127.0.0.1:{port}"
    return [str(BIN / "gunicorn"), "--no-control-socket", "-w", "1", "-b", bind]


def skipped(label: str, missing: object) -> None:
    """Say that row ``label`` is not measured: ``missing`` is not installed."""
    print(f"  skipped {label}: {missing} is not installed", file=sys.stderr)


def start_pinned(
    label: str,
    command: list[str],
    port: int,
    core: int,
    *,
    module: str | None = None,
    root: Path = ROOT,
    env: dict[str, str] | None = None,
) -> ServerProcess | None:
    """Start ``command`` (listening on ``port``) pinned to ``core``.

    It runs from ``root`` with only ``root`` on ``PYTHONPATH``, ``env`` added
    to its environment.  None, and the row ``label`` said to be
    :func:`skipped`, if the command or the Python ``module`` it serves is not
    installed.
    """
    missing = shutil.which(command[0]) is None
    if missing or (module is not None and importlib.util.find_spec(module) is None):
        skipped(label, command[0] if missing else module)
        return None
    return ServerProcess(
        ["taskset", "-c", str(core), *command],
        port,
        cwd=root,
        env={"PYTHONPATH": str(root), **(env or {})},
        preexec_fn=raise_fd_limit,
    )


@contextlib.contextmanager
def answering(server: ServerProcess, path: str) -> Iterator[str]:
    """Run ``server`` for the block, once it answers ``path``: its URL.

    Its workers answer, not just its socket bound (what :func:`serving`
    waits for); the server stops after the block, its log printed if the
    block fails.
    """
    with serving(server, timeout=20):
        url = server.url + path
        wait_until(lambda: answers_http(url), 20)
        yield url


def wrk(
    url: str, connections: int, seconds: int, core: int
) -> tuple[float, float, int, int]:
    """Run wrk; return req/s, p99 in ms, errors and requests completed."""
    output = subprocess.run(
        [
            "taskset",
            "-c",
            str(core),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "5s",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=raise_fd_limit,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = sum(
        int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rps, p99, errors + (int(non2xx.group(1)) if non2xx else 0), requests


@dataclass(frozen=True)
class Column(Generic[R]):
    """One column of a table: its heading, its width, and a row's figure in it."""

    heading: str
    width: int
    #: The figure's format after its width, such as ``.1f``.
    spec: str
    figure: Callable[[R], object]


def wrk_columns(rps_width: int) -> list[Column[Result]]:
    """The columns of every table of wrk runs: req/s, p99, errors, CPU µs/request."""
    return [
        Column("req/s", rps_width, ".0f", lambda r: r.rps),
        Column("p99 ms", 8, ".1f", lambda r: r.p99_ms),
        Column("errors", 7, "", lambda r: r.errors),
        Column("CPU µs/req", 11, ".0f", lambda r: r.cpu_us),
    ]


def ratio(
    heading: str, width: int, figure: Callable[[R], float], reference: R
) -> Column[R]:
    """A column of each row's ``figure`` as a multiple of ``reference``'s."""
    return Column(heading, width, ".2f", lambda r: figure(r) / figure(reference))


def print_table(
    title: str, results: Sequence[R], name_width: int, columns: Sequence[Column[R]]
) -> None:
    """Print ``title``, then a row per result: its name and ``columns``."""
    head = "".join(f" {c.heading:>{c.width}}" for c in columns)
    print(f"\n{title}\n{'server':{name_width}}{head}")
    for r in results:
        figures = "".join(f" {c.figure(r):>{c.width}{c.spec}}" for c in columns)
        print(f"{r.name:{name_width}}{figures}")
