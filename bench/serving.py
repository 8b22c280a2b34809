"""Requests/s, p99 and server CPU per request: aiopyramid's worker and its peers.

Run: ``python bench/serving.py`` (needs ``wrk`` from Debian, ``taskset``, and
``pip install aiopyramid[gunicorn] starlette uwsgi``; ``uvicorn`` and
``httptools`` for the bridge on uvicorn and the previous worker).  Every
server runs one worker pinned to one core; ``wrk`` runs on the other.
Measured in one run:

1. hello world (50 connections): a coroutine and a plain view through
   ``AsyncGunicornWorker`` (plain HTTP/1 served straight from gunicorn's
   parser), the coroutine view again with gunicorn's access log written to
   a file, and Pyramid without aiopyramid under the same worker (its plain
   view in the request's greenlet: the floor); the same through the
   previous worker (uvicorn's HTTP layer inside gunicorn, taken from commit
   ``--previous``, extracted with ``git archive``); the coroutine view
   through the same bridge on uvicorn (``make_asgi_app``, httptools);
   gunicorn ``sync`` and ``gthread``; uWSGI (no asyncio plugin); Starlette
   on uvicorn; and granian's RSGI interface (``--interface rsgi``, the application as
   ``pserve``'s ``egg:aiopyramid#granian`` serves it, through
   :func:`aiopyramid.rsgi.make_rsgi_app`): a coroutine view, a plain view in
   the executor, and a plain view with ``aiopyramid.mode = greenlet``;
2. a 100 ms wait at 200 and 1,000 connections: a coroutine view awaiting
   ``asyncio.sleep(0.1)`` through the worker (again with Python's own
   collector thresholds, ``aiopyramid.gc_threshold = 0``; and the previous
   worker), ``gthread`` with 150 threads (``time.sleep``), granian RSGI,
   Starlette awaiting the same sleep.

CPU µs/request comes from the server processes' own accounting
(``/proc/<pid>/stat``), the figure noise disturbs least; ``CPU x Starlette``
compares it with Starlette's (issue 16's targets: the worker's coroutine
view at most 1.3, its plain view at most 2.2; the access log at most 1.05
times the same without it; issue 23's for granian).  Loopback only; about
six minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.servers import (
    ROOT,
    WORKER,
    ServerProcess,
    answers_http,
    free_port,
    serving,
    wait_until,
)

BIN = Path(sys.executable).parent
#: The last commit whose worker ran uvicorn's HTTP layer.
PREVIOUS = "e8d2b7b"
#: Where the previous commit's tree is extracted (set by main()).
previous_root: Path | None = None
TICKS = os.sysconf("SC_CLK_TCK")
#: Where the worker with its access log on writes it (a real file, as in
#: production; emptied by each run).
ACCESS_LOG = Path(tempfile.gettempdir()) / "aiopyramid-bench-access.log"


@dataclass
class Result:
    """One wrk run against one server."""

    name: str
    rps: float
    p99_ms: float
    errors: int
    cpu_us: float


def raise_fd_limit() -> None:
    """Let 1,000 connections (and their server) have file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def group_cpu(pgid: int) -> float:
    """Seconds of CPU used by every live process of process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def commands(port: int) -> dict[str, list[str]]:
    """The command line of every server, by name."""
    bind = f"127.0.0.1:{port}"
    gunicorn = [str(BIN / "gunicorn"), "--no-control-socket", "-w", "1", "-b", bind]
    uvicorn = [
        str(BIN / "uvicorn"),
        "--port",
        str(port),
        "--workers",
        "1",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    granian = [
        str(BIN / "granian"),
        "--interface",
        "rsgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        "--factory",
    ]
    return {
        "aiopyramid": [*gunicorn, "-k", WORKER, "bench.serving_apps:app"],
        # The same, writing gunicorn's access log (its default format) to a file.
        "aiopyramid-log": [
            *gunicorn,
            "-k",
            WORKER,
            "--access-logfile",
            str(ACCESS_LOG),
            "bench.serving_apps:app",
        ],
        # The worker with Python's own collector thresholds (as before 1.0's
        # aiopyramid.gc_threshold), for the waits.
        "aiopyramid-python-gc": [
            *gunicorn,
            "-k",
            WORKER,
            "bench.serving_apps:python_gc",
        ],
        # Pyramid without aiopyramid (its plain view in the request's greenlet,
        # no thread) under the same worker: the floor the worker adds to.
        "pyramid-worker": [*gunicorn, "-k", WORKER, "bench.serving_apps:wsgi"],
        "previous": [*gunicorn, "-k", WORKER, "bench.serving_apps:app"],
        "bridge": [*uvicorn, "--factory", "bench.serving_apps:bridge_app"],
        "sync": [*gunicorn, "-k", "sync", "bench.serving_apps:wsgi"],
        "gthread": [
            *gunicorn,
            "-k",
            "gthread",
            "--threads",
            "150",
            "bench.serving_apps:wsgi",
        ],
        "uwsgi": [
            str(BIN / "uwsgi"),
            "--http11-socket",
            bind,
            "--processes",
            "1",
            "--module",
            "bench.serving_apps:wsgi",
            "--disable-logging",
            "--master",
            "--die-on-term",
        ],
        "starlette": [*uvicorn, "bench.serving_apps:starlette"],
        # granian's RSGI interface, the application as pserve's runner
        # (use = egg:aiopyramid#granian) serves it.
        "granian": [*granian, "bench.serving_apps:rsgi_app"],
        "granian-greenlet": [*granian, "bench.serving_apps:rsgi_greenlet_app"],
    }


def start(name: str, core: int) -> ServerProcess:
    """Start the server ``name`` on a free port, pinned to ``core``."""
    port = free_port()
    command = commands(port)[name]
    if shutil.which(command[0]) is None:
        raise FileNotFoundError(command[0])
    # The previous worker runs from its own tree, ahead of the installed
    # package on the path.
    root = previous_root if name == "previous" else ROOT
    if root is None:
        raise FileNotFoundError(f"the tree of commit {PREVIOUS}")
    return ServerProcess(
        ["taskset", "-c", str(core), *command],
        port,
        cwd=root,
        env={"PYTHONPATH": str(root)},
        preexec_fn=raise_fd_limit,
    )


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


def measure(
    name: str, label: str, path: str, connections: int, seconds: int
) -> Result | None:
    """Start ``name``, warm it up, load it, and return what wrk and /proc say."""
    try:
        if name == "starlette" and importlib.util.find_spec("starlette") is None:
            raise FileNotFoundError("starlette")
        server = start(name, core=1)
    except FileNotFoundError as missing:
        print(f"  skipped {label}: {missing} is not installed", file=sys.stderr)
        return None
    with serving(server, timeout=20):
        url = server.url + path
        # The workers answer, not just the socket bound.
        wait_until(lambda: answers_http(url), 20)
        wrk(url, min(connections, 50), 1, core=0)  # warm-up
        cpu_before = group_cpu(server.process.pid)
        rps, p99, errors, requests = wrk(url, connections, seconds, core=0)
        cpu = group_cpu(server.process.pid) - cpu_before
    return Result(label, rps, p99, errors, cpu / max(requests, 1) * 1e6)


def table(
    title: str,
    results: list[Result],
    reference: dict[str, str],
    cpu_reference: str | None = None,
    cpu_label: str = "bridge",
) -> None:
    """Print one table with req/s ratios against the named peers.

    With ``cpu_reference``, a last column gives CPU per request as a
    multiple of that server's.
    """
    by_name = {r.name: r for r in results}
    refs = {k: by_name[v] for k, v in reference.items() if v in by_name}
    cpu_ref = by_name.get(cpu_reference or "")
    head = f"{'server':38} {'req/s':>9} {'p99 ms':>8} {'errors':>7} {'CPU µs/req':>11}"
    head += "".join(f" {'x ' + k:>12}" for k in refs)
    if cpu_ref is not None:
        head += f" {'CPU x ' + cpu_label:>16}"
    print(f"\n{title}\n{head}")
    for r in results:
        ratios = "".join(f" {r.rps / ref.rps:>12.2f}" for ref in refs.values())
        if cpu_ref is not None:
            ratios += f" {r.cpu_us / cpu_ref.cpu_us:>16.2f}"
        figures = f"{r.rps:>9.0f} {r.p99_ms:>8.1f} {r.errors:>7} {r.cpu_us:>11.0f}"
        print(f"{r.name:38} {figures}{ratios}")


def extract(commit: str) -> Path | None:
    """The tree of ``commit`` in a temporary directory (None without git)."""
    target = Path(tempfile.mkdtemp(prefix="aiopyramid-previous-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit],
        capture_output=True,
        check=False,
    )
    if archive.returncode:
        print(f"  no previous worker: {archive.stderr.decode()}", file=sys.stderr)
        return None
    # The "data" filter (refusing links out of the tree) where Python has it.
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, **safe)  # type: ignore[arg-type]
    return target


def main() -> None:
    """Run both parts and print their tables."""
    global previous_root
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument(
        "--previous", default=PREVIOUS, help="commit of the previous worker"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("needs wrk and taskset: apt-get install -y wrk util-linux")
    previous_root = extract(args.previous)
    s = args.seconds
    hello = [
        measure("aiopyramid", "aiopyramid worker, coroutine view", "/coroutine", 50, s),
        measure("aiopyramid-log", "  the same, access log on", "/coroutine", 50, s),
        measure("aiopyramid", "aiopyramid worker, plain view", "/plain", 50, s),
        measure("pyramid-worker", "Pyramid alone in the worker", "/plain", 50, s),
        measure("previous", "previous worker, coroutine view", "/coroutine", 50, s),
        measure("previous", "previous worker, plain view", "/plain", 50, s),
        measure("bridge", "bridge on uvicorn, coroutine view", "/coroutine", 50, s),
        measure("sync", "gunicorn sync", "/plain", 50, s),
        measure("gthread", "gunicorn gthread", "/plain", 50, s),
        measure("uwsgi", "uWSGI", "/plain", 50, s),
        measure("granian", "granian RSGI, coroutine view", "/coroutine", 50, s),
        measure("granian", "granian RSGI, plain view (executor)", "/plain", 50, s),
        measure(
            "granian-greenlet",
            "granian RSGI, plain (greenlet mode)",
            "/plain",
            50,
            s,
        ),
        measure("starlette", "Starlette on uvicorn", "/coroutine", 50, s),
    ]
    table(
        "1. hello world, 50 connections",
        [r for r in hello if r],
        {"gthread": "gunicorn gthread", "starlette": "Starlette on uvicorn"},
        cpu_reference="Starlette on uvicorn",
        cpu_label="Starlette",
    )
    by_name = {r.name: r for r in hello if r}
    logged, plain = (
        by_name.get("  the same, access log on"),
        by_name.get("aiopyramid worker, coroutine view"),
    )
    if logged and plain:
        print(
            f"access log on / off (CPU per request): "
            f"{logged.cpu_us / plain.cpu_us:.2f} (issue 16's target: at most 1.05)"
        )
    print(
        "issue 16's targets, CPU x Starlette: coroutine view at most 1.3, "
        "plain view at most 2.2"
    )
    print(
        "issue 23's targets on granian, CPU x Starlette: coroutine view at most "
        "0.9, plain view (executor) at most 1.6, plain view (greenlet mode) at "
        "most 0.9"
    )
    for connections in (200, 1000):
        waits = [
            measure(
                "aiopyramid",
                "aiopyramid worker, coroutine",
                "/wait_coroutine",
                connections,
                s,
            ),
            measure(
                "aiopyramid-python-gc",
                "  the same, Python's GC thresholds",
                "/wait_coroutine",
                connections,
                s,
            ),
            measure(
                "previous",
                "previous worker, coroutine",
                "/wait_coroutine",
                connections,
                s,
            ),
            measure(
                "gthread",
                "gunicorn gthread, 150 threads",
                "/wait_plain",
                connections,
                s,
            ),
            measure(
                "granian",
                "granian RSGI, coroutine",
                "/wait_coroutine",
                connections,
                s,
            ),
            measure(
                "starlette", "Starlette on uvicorn", "/wait_coroutine", connections, s
            ),
        ]
        table(
            f"2. 100 ms wait, {connections} connections "
            f"(ideal {connections * 10} req/s)",
            [r for r in waits if r],
            {
                "gthread": "gunicorn gthread, 150 threads",
                "starlette": "Starlette on uvicorn",
            },
            cpu_reference="Starlette on uvicorn",
            cpu_label="Starlette",
        )
    print(
        "issue 23's targets at 1,000 connections, x Starlette's req/s: the "
        "worker at least 0.9 (p99 at most 300 ms), granian RSGI at least 1.2 "
        "(p99 at most 250 ms), 0 errors"
    )
    if previous_root is not None:
        shutil.rmtree(previous_root, ignore_errors=True)


if __name__ == "__main__":
    main()
