"""Start real uWSGI servers (Debian's packages) for tests and benchmarks.

uWSGI's Python plugins embed Debian's ``/usr/bin/python3``, so the
application's dependencies live in a virtualenv made with that interpreter:
:func:`uwsgi_venv` builds it once under the repository (``.uwsgi-venv/``) and
rebuilds it when the packaging changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "REPO",
    "UWSGI",
    "UWSGIServer",
    "free_port",
    "missing_uwsgi",
    "uwsgi_ini",
    "uwsgi_venv",
]

REPO = Path(__file__).resolve().parents[2]
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
    venv = REPO / ".uwsgi-venv"
    stamp_text = "\n".join(
        [
            hashlib.sha256((REPO / "setup.py").read_bytes()).hexdigest(),
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
            str(REPO),
            *VENV_EXTRAS,
        ],
        check=True,
    )
    stamp.write_text(stamp_text)
    return venv


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
pythonpath = {REPO}
module = {module}
"""


class UWSGIServer:
    """One uWSGI process serving ``module``, logging to ``log``."""

    def __init__(
        self,
        module: str,
        log: Path,
        venv: Path,
        cores: int = 50,
        cpu: int | None = None,
        extra_ini: str = "",
        http: str = "http-socket",
    ) -> None:
        self.module = module
        self.log = log
        self.venv = venv
        self.cores = cores
        self.cpu = cpu
        self.extra_ini = extra_ini
        self.http = http
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start uWSGI on a free port and wait until it answers HTTP."""
        self.port = free_port()
        ini = self.log.with_suffix(".ini")
        ini.write_text(
            uwsgi_ini(self.port, self.module, self.venv, self.cores, self.http)
            + self.extra_ini
        )
        env = dict(os.environ)
        if env.get("COVERAGE_PROCESS_START"):
            # Measured inside uWSGI too: the venv's coverage starts itself
            # from its .pth file; data files land beside the others.
            env.setdefault("COVERAGE_FILE", str(REPO / ".coverage"))
        command = [str(UWSGI), "--ini", str(ini)]
        if self.cpu is not None:
            command = ["taskset", "-c", str(self.cpu), *command]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uWSGI exited early:\n{self.log_text()}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
            except urllib.error.HTTPError:  # an answer all the same
                break
            except OSError:  # not listening yet
                time.sleep(0.1)
            else:
                break
        else:
            self.stop()
            raise RuntimeError(
                f"uWSGI did not answer in {timeout} s:\n{self.log_text()}"
            )
        if "no app loaded" in self.log_text():
            # uWSGI serves 500s forever rather than exit: stop it and say why.
            self.stop()
            raise RuntimeError(
                f"uWSGI could not load {self.module}:\n{self.log_text()}"
            )

    def stop(self) -> None:
        """Stop the server (its whole process group), saving coverage first."""
        if self.process is None:
            return
        if os.environ.get("COVERAGE_PROCESS_START") and self.process.poll() is None:
            # uWSGI skips atexit handlers in async mode: save explicitly.
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + "/_coverage", timeout=5).close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def log_text(self) -> str:
        """Everything uWSGI logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @contextlib.contextmanager
    def running(self) -> Iterator[UWSGIServer]:
        """Run the server for the duration of a ``with`` block."""
        self.start()
        try:
            yield self
        finally:
            self.stop()


@contextlib.contextmanager
def uwsgi_for_tests(
    request: Any, module: str, log_name: str, **options: Any
) -> Iterator[UWSGIServer]:
    """Serve ``module`` with Debian's uWSGI for a test module's fixture.

    Skips when uWSGI is missing (fails under ``CI=true``), logs to
    ``test-artifacts/log_name``, and shows the log's end if a test failed.
    """
    import pytest

    reason = missing_uwsgi()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    logs = REPO / "test-artifacts"
    logs.mkdir(exist_ok=True)
    uwsgi = UWSGIServer(module, logs / log_name, uwsgi_venv(), **options)
    failed_before = request.session.testsfailed
    with uwsgi.running():
        yield uwsgi
    if request.session.testsfailed > failed_before:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_sep("-", f"uWSGI log ({uwsgi.log})")
        reporter.write_line(uwsgi.log_text()[-20000:])
