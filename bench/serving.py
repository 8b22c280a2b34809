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
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.wrk import (
    BIN,
    Result,
    answering,
    group_cpu,
    gunicorn_on,
    print_table,
    ratio,
    require_wrk,
    skipped,
    start_pinned,
    wrk,
    wrk_columns,
)
from tests.harness.servers import ROOT, WORKER, ServerProcess, free_port

#: The last commit whose worker ran uvicorn's HTTP layer.
PREVIOUS = "e8d2b7b"
#: Where the previous commit's tree is extracted (set by main()).
previous_root: Path | None = None
#: Where the worker with its access log on writes it (a real file, as in
#: production; emptied by each run).
ACCESS_LOG = Path(tempfile.gettempdir()) / "aiopyramid-bench-access.log"


def commands(port: int) -> dict[str, list[str]]:
    """The command line of every server, by name."""
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
    gunicorn = gunicorn_on(port)
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
            f"127.0.0.1:{port}",
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


def start(name: str, label: str, core: int) -> ServerProcess | None:
    """Start the server ``name`` on a free port, pinned to ``core``.

    None if it is not installed (row ``label`` is skipped).
    """
    # The previous worker runs from its own tree, ahead of the installed
    # package on the path.
    root = previous_root if name == "previous" else ROOT
    if root is None:
        skipped(label, f"the tree of commit {PREVIOUS}")
        return None
    port = free_port()
    module = "starlette" if name == "starlette" else None
    return start_pinned(
        label, commands(port)[name], port, core, module=module, root=root
    )


def measure(
    name: str, label: str, path: str, connections: int, seconds: int
) -> Result | None:
    """Start ``name``, warm it up, load it, and return what wrk and /proc say."""
    server = start(name, label, core=1)
    if server is None:
        return None
    with answering(server, path) as url:
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
    columns = wrk_columns(rps_width=9)
    for short, name in reference.items():
        if name in by_name:
            columns.append(ratio("x " + short, 12, lambda r: r.rps, by_name[name]))
    if cpu_reference in by_name:
        cpu_ref = by_name[cpu_reference]
        columns.append(ratio("CPU x " + cpu_label, 16, lambda r: r.cpu_us, cpu_ref))
    print_table(title, results, 38, columns)


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


#: Part 1's rows, measured in this order: (server, row label, path).
HELLO = [
    ("aiopyramid", "aiopyramid worker, coroutine view", "/coroutine"),
    ("aiopyramid-log", "  the same, access log on", "/coroutine"),
    ("aiopyramid", "aiopyramid worker, plain view", "/plain"),
    ("pyramid-worker", "Pyramid alone in the worker", "/plain"),
    ("previous", "previous worker, coroutine view", "/coroutine"),
    ("previous", "previous worker, plain view", "/plain"),
    ("bridge", "bridge on uvicorn, coroutine view", "/coroutine"),
    ("sync", "gunicorn sync", "/plain"),
    ("gthread", "gunicorn gthread", "/plain"),
    ("uwsgi", "uWSGI", "/plain"),
    ("granian", "granian RSGI, coroutine view", "/coroutine"),
    ("granian", "granian RSGI, plain view (executor)", "/plain"),
    ("granian-greenlet", "granian RSGI, plain (greenlet mode)", "/plain"),
    ("starlette", "Starlette on uvicorn", "/coroutine"),
]
#: Part 2's rows, at each number of connections.
WAITS = [
    ("aiopyramid", "aiopyramid worker, coroutine", "/wait_coroutine"),
    ("aiopyramid-python-gc", "  the same, Python's GC thresholds", "/wait_coroutine"),
    ("previous", "previous worker, coroutine", "/wait_coroutine"),
    ("gthread", "gunicorn gthread, 150 threads", "/wait_plain"),
    ("granian", "granian RSGI, coroutine", "/wait_coroutine"),
    ("starlette", "Starlette on uvicorn", "/wait_coroutine"),
]


def main() -> None:
    """Run both parts and print their tables."""
    global previous_root
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument(
        "--previous", default=PREVIOUS, help="commit of the previous worker"
    )
    args = parser.parse_args()
    require_wrk()
    previous_root = extract(args.previous)
    s = args.seconds
    hello = [measure(name, label, path, 50, s) for name, label, path in HELLO]
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
            measure(name, label, path, connections, s) for name, label, path in WAITS
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
