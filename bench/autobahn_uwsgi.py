"""Autobahn|Testsuite's fuzzing client against the websocket echo under uWSGI.

Run: ``python bench/autobahn_uwsgi.py`` (a few minutes; needs Debian's uWSGI
packages, and Autobahn|Testsuite, which runs on Python 2.7 only)::

    ~/.pyenv/versions/2.7.18/bin/python -m pip install 'virtualenv<20.22'
    ~/.pyenv/versions/2.7.18/bin/python -m virtualenv .venv-autobahn
    .venv-autobahn/bin/pip install autobahntestsuite

uWSGI runs with the configuration ``docs/uwsgi.rst`` shows (master process,
one worker, ``asyncio = 50``, greenlet), plus ``websockets-max-size`` raised
to 16 MiB + 1 KiB because cases 9.1.6 and 9.2.6 send 16 MiB messages; it
serves ``/ws/echo`` of ``tests/uwsgi_apps/app.py`` (the unwrapped app),
mapped with ``UWSGIWebsocketMapper``.  Cases 1-7, 9 and 10 run (12 and 13 are
permessage-deflate, which uWSGI's handshake does not negotiate).  Prints the
count of each verdict, every case that is not OK, and whether the worker
ever died; the full HTML report stays in ``--reports``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.uwsgi_apps.server import REPO, UWSGIServer, missing_uwsgi, uwsgi_venv

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
#: What docs/uwsgi.rst adds to the base configuration, and the 16 MiB limit.
EXTRA_INI = """\
master = true
ignore-sigpipe = true
die-on-term = true
disable-logging = true
websockets-max-size = 16385
"""
AGENT = "aiopyramid-uwsgi"


def main() -> int:
    """Run the fuzzing client and summarise its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wstest",
        default=str(REPO / ".venv-autobahn" / "bin" / "wstest"),
        help="Autobahn|Testsuite's wstest (Python 2.7 virtualenv)",
    )
    parser.add_argument("--cases", nargs="*", default=CASES)
    parser.add_argument(
        "--reports", default=str(REPO / "test-artifacts" / "autobahn-uwsgi")
    )
    args = parser.parse_args()
    reason = missing_uwsgi()
    if reason is not None:
        sys.exit(reason)
    if not Path(args.wstest).exists():
        sys.exit(f"no {args.wstest}: see this script's docstring to install it")
    reports = Path(args.reports)
    reports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        server = UWSGIServer(
            "tests.uwsgi_apps.app:bare_application",
            Path(work) / "uwsgi.log",
            uwsgi_venv(),
            extra_ini=EXTRA_INI,
        )
        with server.running():
            spec = {
                "outdir": str(reports),
                "servers": [
                    {"agent": AGENT, "url": f"ws://127.0.0.1:{server.port}/ws/echo"}
                ],
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
            log = server.log_text()
    results = json.loads((reports / "index.json").read_text())[AGENT]
    verdicts = collections.Counter(case["behavior"] for case in results.values())
    closes = collections.Counter(case["behaviorClose"] for case in results.values())
    print(f"Autobahn|Testsuite fuzzingclient, cases {' '.join(args.cases)}")
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
    died = "died" in log or "Segmentation Fault" in log
    print(f"worker died: {'YES' if died else 'no'}")
    failed = verdicts.get("FAILED", 0) + closes.get("FAILED", 0)
    return 1 if died or failed else 0


def _order(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


if __name__ == "__main__":
    sys.exit(main())
