"""Real uWSGI servers (Debian's packages) for tests and benchmarks.

uWSGI's Python plugins embed Debian's ``/usr/bin/python3``, so the
application's dependencies live in a virtualenv made with that interpreter:
:func:`uwsgi_venv` builds it once under the repository (``.uwsgi-venv/``) and
rebuilds it when the packaging changes.  :func:`uwsgi_server` starts uWSGI
with the configuration the docs give, as a :class:`.servers.ServerProcess`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.servers import (
    ARTIFACTS,
    ROOT,
    UNIT,
    ServerProcess,
    answers_http,
    free_port,
    require,
)

UWSGI = Path("/usr/bin/uwsgi")
SYSTEM_PYTHON = Path("/usr/bin/python3")
PLUGIN_DIR = Path("/usr/lib/uwsgi/plugins")
PLUGINS = ("python3", "asyncio_python3", "greenlet_python3")
APT_PACKAGES = (
    "uwsgi-core uwsgi-plugin-python3 uwsgi-plugin-asyncio-python3 "
    "uwsgi-plugin-greenlet-python3 python3-venv"
)
#: What the virtualenv needs besides aiopyramid itself.
VENV_EXTRAS = ("coverage>=7.10", "aiosqlite>=0.20", "websockets>=13", "redis>=5")


def missing_uwsgi() -> str | None:
    """Say what is missing to run Debian's uWSGI with asyncio, or ``None``."""
    needed = [UWSGI, SYSTEM_PYTHON, *(PLUGIN_DIR / f"{n}_plugin.so" for n in PLUGINS)]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        return (
            f"uWSGI with the asyncio and greenlet plugins is not installed "
            f"(missing {', '.join(missing)}); install it with: "
            f"apt-get install -y {APT_PACKAGES}"
        )
    return None


def uwsgi_venv() -> Path:
    """Build (once) the virtualenv that uWSGI's embedded Python uses."""
    venv = ROOT / ".uwsgi-venv"
    stamp_text = "\n".join(
        [
            hashlib.sha256((ROOT / "setup.py").read_bytes()).hexdigest(),
            *VENV_EXTRAS,
        ]
    )
    stamp = venv / "aiopyramid-stamp.txt"
    if stamp.exists() and stamp.read_text() == stamp_text:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "-e",
            str(ROOT),
            *VENV_EXTRAS,
        ],
        check=True,
    )
    stamp.write_text(stamp_text)
    return venv


def uwsgi_ini(
    port: int, module: str, venv: Path, cores: int = 50, http: str = "http-socket"
) -> str:
    """The configuration the docs give for Debian's packages, for ``module``.

    ``http`` is the kind of socket: ``http11-socket`` keeps connections alive.
    """
    return f"""\
[uwsgi]
plugins = {", ".join(PLUGINS)}
asyncio = {cores}
greenlet = true
single-interpreter = true
{http} = 127.0.0.1:{port}
workers = 1
virtualenv = {venv}
pythonpath = {ROOT}
module = {module}
"""


class UWSGIServer(ServerProcess):
    """uWSGI: ready once it answers HTTP with its application loaded.

    Stopped with SIGINT, after asking the application to save its coverage
    data (uWSGI skips atexit handlers in async mode); the application must
    then serve ``/_coverage`` (``tests/apps/uwsgi.py`` does).
    """

    def is_ready(self) -> bool:
        """Whether uWSGI answers; fail at once if it could not load the app."""
        if not answers_http(self.url + "/"):
            return False
        if "no app loaded" in self.log():
            # uWSGI serves 500s forever rather than exit: stop it and say why.
            self.stop()
            pytest.fail(f"uWSGI could not load its application:\n{self.log()}")
        return True

    def stop(self, timeout: float = 15) -> int:
        """Save coverage data first when it is measured, then stop uWSGI."""
        if os.environ.get("COVERAGE_PROCESS_START") and self.process.poll() is None:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(
                    self.url + "/_coverage", timeout=5 * UNIT
                ).close()
        return super().stop(timeout)


def uwsgi_server(
    module: str,
    log: Path,
    venv: Path,
    *,
    cores: int = 50,
    cpu: int | None = None,
    extra_ini: str = "",
    http: str = "http-socket",
) -> UWSGIServer:
    """Start uWSGI serving ``module`` on a free port (pinned to ``cpu`` if given).

    Its configuration (:func:`uwsgi_ini` plus ``extra_ini``) is written next
    to ``log``, with the suffix ``.ini``.  Call ``wait_ready`` on the result.
    """
    port = free_port()
    ini = log.with_suffix(".ini")
    ini.write_text(uwsgi_ini(port, module, venv, cores, http) + extra_ini)
    env = {}
    if os.environ.get("COVERAGE_PROCESS_START"):
        # Measured inside uWSGI too: the venv's coverage starts itself from
        # its .pth file; data files land beside the others.
        env["COVERAGE_FILE"] = os.environ.get("COVERAGE_FILE", str(ROOT / ".coverage"))
    command = [str(UWSGI), "--ini", str(ini)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    return UWSGIServer(command, port, env=env, log=log, stop_signal=signal.SIGINT)


@contextlib.contextmanager
def uwsgi_for_tests(
    request: Any, module: str, log_name: str, **options: Any
) -> Iterator[UWSGIServer]:
    """Serve ``module`` with Debian's uWSGI for a test module's fixture.

    Skips when uWSGI is missing (fails under ``CI=true``), logs to
    ``test-artifacts/log_name``, and shows the log's end if a test failed.
    """
    reason = missing_uwsgi()
    require(reason is None, reason or "")
    ARTIFACTS.mkdir(exist_ok=True)
    server = uwsgi_server(module, ARTIFACTS / log_name, uwsgi_venv(), **options)
    failed_before = request.session.testsfailed
    try:
        server.wait_ready(30)
        yield server
    finally:
        server.stop()
    if request.session.testsfailed > failed_before:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_sep("-", f"uWSGI log ({server.log_path})")
        reporter.write_line(server.log()[-20000:])
