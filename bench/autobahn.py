"""Autobahn|Testsuite's fuzzing client against the websocket echo, on each server.

Run: ``python bench/autobahn.py --server worker`` (or ``uwsgi``,
``gunicorn-asgi`` or ``granian``; a few minutes each).  Autobahn|Testsuite
runs on Python 2.7 only::

    ~/.pyenv/versions/2.7.18/bin/python -m pip install 'virtualenv<20.22'
    ~/.pyenv/versions/2.7.18/bin/python -m virtualenv .venv-autobahn
    .venv-autobahn/bin/pip install autobahntestsuite

The servers, each serving ``/echo`` (the ``async def`` echo view of
``bench/websocket_apps.py``):

* ``worker``: gunicorn with ``AsyncGunicornWorker``, one worker,
  ``aiopyramid.websocket.max_size`` at 16 MiB + 1 KiB (cases 9.1.6 and 9.2.6
  send 16 MiB messages) and permessage-deflate on (its default): cases 1-7,
  9, 10, 12 and 13 run;
* ``gunicorn-asgi``: the same application through :mod:`aiopyramid.asgi` on
  gunicorn's own ``-k asgi`` worker and its websocket implementation, for
  comparison (no permessage-deflate there: 12 and 13 are left out);
* ``granian``: the same application through :mod:`aiopyramid.rsgi` on
  granian's RSGI interface (one worker, the asyncio loop), framed by
  granian itself (12 and 13 are left out: granian does not negotiate
  permessage-deflate);
* ``uwsgi``: Debian's uWSGI with the configuration ``docs/uwsgi.rst`` shows
  (master process, one worker, ``asyncio = 50``, greenlet), plus
  ``websockets-max-size`` raised to 16 MiB + 1 KiB; it serves
  ``bench/uwsgi_echo.py``, mapped with ``UWSGIWebsocketMapper`` (12 and 13
  are left out: uWSGI's handshake does not negotiate permessage-deflate).

Prints the count of each verdict, every case that is not OK, the time the
9.x (bulk) cases took, and whether the worker ever died; the full HTML
report stays in ``--reports``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.servers import (
    ARTIFACTS,
    ROOT,
    free_port,
    granian_command,
    gunicorn_command,
    python_module,
    running,
    serving,
)
from tests.harness.uwsgi import missing_uwsgi, uwsgi_server, uwsgi_venv

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
DEFLATE_CASES = ["12.*", "13.*"]
#: What docs/uwsgi.rst adds to the base configuration, and the 16 MiB limit.
EXTRA_INI = """\
master = true
ignore-sigpipe = true
die-on-term = true
disable-logging = true
websockets-max-size = 16385
"""
LIMIT = 16 * 1024 * 1024 + 1024
WORKER_APP = f"bench.websocket_apps:pyramid_app(max_size={LIMIT})"


@contextlib.contextmanager
def serve(kind: str, work: Path) -> Iterator[tuple[int, list[str]]]:
    """Run the server ``kind``: its port, and (after the block) its log lines."""
    log: list[str] = []
    if kind == "uwsgi":
        reason = missing_uwsgi()
        if reason is not None:
            sys.exit(reason)
        server = uwsgi_server(
            "bench.uwsgi_echo:application",
            work / "uwsgi.log",
            uwsgi_venv(),
            extra_ini=EXTRA_INI,
        )
        with serving(server, timeout=30):
            yield server.port, log
            log.append(server.log())
        return
    port = free_port()
    bind = ("--bind", f"127.0.0.1:{port}")
    if kind == "worker":
        command = gunicorn_command(*bind, WORKER_APP)
    elif kind == "granian":
        command = granian_command(
            "bench.websocket_apps:autobahn_rsgi", port, "--factory"
        )
    else:
        command = python_module(
            "gunicorn",
            *("-k", "asgi", "--workers", "1", "--no-control-socket", *bind),
            *("--websocket-max-message-size", str(LIMIT)),
            "bench.websocket_apps:pyramid_asgi()",
        )
    with running(command, port) as process:
        yield port, log
        log.append(process.log())


def main() -> int:
    """Run the fuzzing client and summarise its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wstest",
        default=str(ROOT / ".venv-autobahn" / "bin" / "wstest"),
        help="Autobahn|Testsuite's wstest (Python 2.7 virtualenv)",
    )
    parser.add_argument(
        "--server",
        choices=["worker", "gunicorn-asgi", "uwsgi", "granian"],
        default="worker",
    )
    parser.add_argument("--cases", nargs="*", help="default: all that apply")
    parser.add_argument("--reports", help="default: test-artifacts/autobahn-SERVER")
    args = parser.parse_args()
    if args.cases is None:
        args.cases = CASES + (DEFLATE_CASES if args.server == "worker" else [])
    agent = f"aiopyramid-{args.server}"
    if not Path(args.wstest).exists():
        sys.exit(f"no {args.wstest}: see this script's docstring to install it")
    reports = Path(args.reports or ARTIFACTS / f"autobahn-{args.server}")
    reports.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as work,
        serve(args.server, Path(work)) as (port, logs),
    ):
        spec = {
            "outdir": str(reports),
            "servers": [{"agent": agent, "url": f"ws://127.0.0.1:{port}/echo"}],
            "cases": args.cases,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        spec_file = Path(work) / "fuzzingclient.json"
        spec_file.write_text(json.dumps(spec))
        subprocess.run(
            [args.wstest, "-m", "fuzzingclient", "-s", str(spec_file)],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    log = "".join(logs)
    results = json.loads((reports / "index.json").read_text())[agent]
    verdicts = collections.Counter(case["behavior"] for case in results.values())
    closes = collections.Counter(case["behaviorClose"] for case in results.values())
    print(f"Autobahn|Testsuite fuzzingclient on {args.server}: {' '.join(args.cases)}")
    print(
        f"{len(results)} cases: " + ", ".join(f"{n} {v}" for v, n in verdicts.items())
    )
    print("closing behaviour: " + ", ".join(f"{n} {v}" for v, n in closes.items()))
    for case, result in sorted(results.items(), key=lambda item: _order(item[0])):
        if result["behavior"] != "OK" or result["behaviorClose"] != "OK":
            print(f"  {case}: {result['behavior']} / close {result['behaviorClose']}")
    nine = {c: r["duration"] for c, r in results.items() if c.startswith("9.")}
    if nine:
        print(f"9.x: {sum(nine.values()) / 1000:.1f} s in all ({len(nine)} cases)")
    died = any(
        sign in log for sign in ("died", "Segmentation Fault", "exited with code")
    )
    print(f"worker died: {'YES' if died else 'no'}")
    failed = verdicts.get("FAILED", 0) + closes.get("FAILED", 0)
    return 1 if died or failed else 0


def _order(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


if __name__ == "__main__":
    sys.exit(main())
