"""Real servers on free loopback ports: the one launcher of the tests and benches.

:class:`ServerProcess` starts a command (gunicorn, uvicorn, hypercorn,
granian, pserve, uWSGI, redis-server...), waits until it is ready, and stops
it afterwards; its output goes to a log file, which :func:`running` prints
when the block fails.  Every timeout is a multiple of :data:`UNIT`, and a
test waits for an event with :func:`wait_until`, never with a bare sleep.
:func:`require` skips a test whose requirement is missing, except under
``CI=true``, where a missing requirement is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

#: The repository's root (servers run from there, with it on PYTHONPATH).
ROOT = Path(__file__).resolve().parents[2]
#: Where logs and screenshots are kept as test artifacts.
ARTIFACTS = ROOT / "test-artifacts"
#: One unit for every timeout of the tests; raise it on a slow machine.
UNIT = float(os.environ.get("AIOPYRAMID_TEST_TIMEOUT_UNIT", "1"))
#: The worker class, as gunicorn's ``-k`` takes it.
WORKER = "aiopyramid.gunicorn.worker.AsyncGunicornWorker"


def require(condition: bool, reason: str) -> None:
    """Skip the test unless ``condition`` holds; under ``CI=true`` fail instead."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"requirement missing in CI: {reason}")
    pytest.skip(reason)


def import_required(name: str) -> Any:
    """Import ``name``: without it skip, except under ``CI=true`` (then fail)."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(name)  # an ImportError fails the run
    return pytest.importorskip(name)


def require_module(name: str) -> None:
    """Require an importable module ``name``."""
    require(importlib.util.find_spec(name) is not None, f"{name} is not installed")


def wait_until(condition: Callable[[], object], seconds: float = 5) -> None:
    """Poll ``condition`` until it is true; fail after ``seconds`` (times UNIT)."""
    deadline = time.monotonic() + seconds * UNIT
    while not condition():
        assert time.monotonic() < deadline, f"not met in time: {_named(condition)}"
        time.sleep(0.05)


async def wait_until_async(
    condition: Callable[[], Awaitable[object]], seconds: float = 5
) -> None:
    """:func:`wait_until` for a coroutine function, polled on the running loop."""
    deadline = time.monotonic() + seconds * UNIT
    while not await condition():
        assert time.monotonic() < deadline, f"not met in time: {_named(condition)}"
        await asyncio.sleep(0.05)


def _named(condition: Callable[..., object]) -> str:
    return (condition.__doc__ or repr(condition)).strip()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers_http(url: str) -> bool:
    """Whether ``url`` gets an HTTP answer, whatever its status."""
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:  # an answer all the same
        return True
    except OSError:  # not listening yet, or not answering yet
        return False
    return True


class ServerProcess:
    """A server subprocess on ``127.0.0.1:port`` (or a unix socket).

    It runs in a session of its own from ``cwd`` with the repository on
    ``PYTHONPATH`` (``env`` adds to the environment, and may replace that),
    writing to ``log`` (a temporary file unless given).  ``stop_signal`` is
    what :meth:`stop` sends: SIGINT for uvicorn, which re-raises the signal
    it stopped on (SIGINT then ends Python normally, so coverage data is
    saved, where SIGTERM would kill it), SIGTERM for the others.
    ``preexec_fn`` runs in the child before the command (the benches raise
    the file descriptor limit there).  ``user`` (root only) runs the command
    as that user, in its group and no other (PostgreSQL refuses to run as
    root).
    """

    def __init__(
        self,
        args: Sequence[str],
        port: int,
        *,
        unix_socket: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        log: Path | None = None,
        stop_signal: int | None = None,
        preexec_fn: Callable[[], object] | None = None,
        user: str | None = None,
    ) -> None:
        self.args = list(args)
        self.port = port
        self.unix_socket = unix_socket
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        if stop_signal is None:
            uvicorn = any("uvicorn" in arg for arg in self.args[:3])
            stop_signal = signal.SIGINT if uvicorn else signal.SIGTERM
        self.stop_signal = stop_signal
        self.temporary_log = log is None
        if log is None:
            log = Path(tempfile.mkstemp(prefix="aiopyramid-server-", suffix=".log")[1])
        self.log_path = log
        self._log = self.log_path.open("wb")
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), environment.get("PYTHONPATH")])
        )
        environment.update(env or {})
        self.process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec_fn,
            user=user,
            group=None if user is None else pwd.getpwnam(user).pw_gid,
            extra_groups=None if user is None else [],
        )

    def is_ready(self) -> bool:
        """Whether the server accepts connections (subclasses may ask more)."""
        with contextlib.suppress(OSError):
            if self.unix_socket:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(self.unix_socket)
            else:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            return True
        return False

    def wait_ready(self, timeout: float = 15) -> ServerProcess:
        """Wait until :meth:`is_ready`; fail with the server's log if it never is."""
        deadline = time.monotonic() + timeout * UNIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"server exited with {self.process.returncode}:\n{self.log()}"
                )
            if self.is_ready():
                return self
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"server did not start in {timeout * UNIT} s:\n{self.log()}")

    def log(self) -> str:
        """Everything the server wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server's main process."""
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        """Stop the server gracefully, killing its process group if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout * UNIT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode


@contextlib.contextmanager
def serving(server: ServerProcess, timeout: float = 15) -> Iterator[ServerProcess]:
    """Wait until ``server`` is ready, and stop it after the block.

    Its log is printed if the block fails, and removed afterwards if it was
    a temporary file.
    """
    try:
        yield server.wait_ready(timeout)
    except BaseException:
        server.stop()
        command = " ".join(server.args)
        sys.stderr.write(f"--- server log ({command}) ---\n{server.log()}\n")
        raise
    else:
        server.stop()
    finally:
        if server.temporary_log:
            with contextlib.suppress(OSError):
                server.log_path.unlink()


def running(
    args: Sequence[str], port: int, **options: Any
) -> contextlib.AbstractContextManager[ServerProcess]:
    """Run ``ServerProcess(args, port, **options)`` for the duration of a block."""
    return serving(ServerProcess(args, port, **options))


def python_module(module: str, *args: str) -> list[str]:
    """Command line running ``python -m module args``."""
    return [sys.executable, "-m", module, *args]


def gunicorn_command(*args: str) -> list[str]:
    """Command line of gunicorn with the asyncio worker on one worker.

    Without gunicorn's control socket: tests leave nothing in ``~/.gunicorn``.
    """
    return python_module(
        "gunicorn", "-k", WORKER, "--workers", "1", "--no-control-socket", *args
    )


def granian_command(
    target: str, port: int, *args: str, interface: str = "rsgi"
) -> list[str]:
    """Command line of granian serving ``target`` on ``127.0.0.1:port``.

    One worker, on the ``interface`` given (RSGI unless said), with the
    asyncio loop (the tests' servers all run on it unless they say).
    """
    return [
        console_script("granian"),
        "--interface",
        interface,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "asyncio",
        *args,
        target,
    ]


def granian(
    target: str, *args: str, env: dict[str, str] | None = None, **options: Any
) -> contextlib.AbstractContextManager[ServerProcess]:
    """granian (:func:`granian_command`) on a free port for the block's duration."""
    port = free_port()
    return running(granian_command(target, port, *args), port, env=env, **options)


def console_script(name: str) -> str:
    """Path of a console script installed next to this Python."""
    path = Path(sys.executable).with_name(name)
    found = str(path) if path.exists() else shutil.which(name)
    require(found is not None, f"the {name} command is not installed")
    assert found is not None
    return found
