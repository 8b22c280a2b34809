"""Real servers for the tests: subprocesses on free loopback ports.

:class:`ServerProcess` starts a command, waits until its port accepts
connections, and stops it afterwards; its output goes to a log file that is
printed when the test fails.  :func:`require` skips a test whose requirement is
missing, except under ``CI=true``, where a missing requirement is a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: One unit for every timeout in the server tests; raise it on a slow machine.
UNIT = float(os.environ.get("AIOPYRAMID_TEST_TIMEOUT_UNIT", "1"))
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


def wait_until(condition: Any, seconds: float = 5) -> None:
    """Poll ``condition`` until it is true; fail after ``seconds`` (times UNIT)."""
    deadline = time.monotonic() + seconds * UNIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A server subprocess on ``127.0.0.1:port`` (or a unix socket)."""

    def __init__(
        self,
        args: Sequence[str],
        port: int,
        *,
        unix_socket: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.args = list(args)
        self.port = port
        self.unix_socket = unix_socket
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.log_path = Path(
            tempfile.mkstemp(prefix="aiopyramid-server-", suffix=".log")[1]
        )
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
        )

    def wait_ready(self, timeout: float = 15) -> ServerProcess:
        """Wait until the server accepts connections; fail with its log if not."""
        deadline = time.monotonic() + timeout * UNIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"server exited with {self.process.returncode}:\n{self.log()}"
                )
            with contextlib.suppress(OSError):
                if self.unix_socket:
                    with socket.socket(socket.AF_UNIX) as sock:
                        sock.connect(self.unix_socket)
                else:
                    socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            time.sleep(0.05)
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
        """Stop the server gracefully, killing it if it lingers.

        uvicorn re-raises the signal it stopped on: SIGINT then ends Python
        normally (so coverage data is saved), where SIGTERM would kill it.
        """
        if self.process.poll() is None:
            uvicorn = any("uvicorn" in arg for arg in self.args[:3])
            self.process.send_signal(signal.SIGINT if uvicorn else signal.SIGTERM)
            try:
                self.process.wait(timeout * UNIT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode


async def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` over a fresh connection with a minimal client.

    Far cheaper than a full HTTP client, so that hundreds of concurrent
    requests measure the server rather than the client.
    """
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


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


def console_script(name: str) -> str:
    """Path of a console script installed next to this Python."""
    path = Path(sys.executable).with_name(name)
    found = str(path) if path.exists() else shutil.which(name)
    require(found is not None, f"the {name} command is not installed")
    assert found is not None
    return found


@contextlib.contextmanager
def running(
    args: Sequence[str],
    port: int,
    **options: object,
) -> Iterator[ServerProcess]:
    """Run a server for the duration of the block; print its log on failure."""
    server = ServerProcess(args, port, **options)  # type: ignore[arg-type]
    try:
        yield server.wait_ready()
    except BaseException:
        server.stop()
        sys.stderr.write(f"--- server log ({' '.join(args)}) ---\n{server.log()}\n")
        raise
    else:
        server.stop()
    finally:
        with contextlib.suppress(OSError):
            server.log_path.unlink()


REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A private redis-server on 127.0.0.1, which a test may stop and restart.

    Without persistence; ``url`` is what ``aiopyramid.broadcast.url`` takes.
    """

    def __init__(self) -> None:
        require(
            shutil.which("redis-server") is not None, "apt-get install redis-server"
        )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: ServerProcess | None = None
        self.start()

    def start(self) -> None:
        self.process = ServerProcess(
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            self.port,
        ).wait_ready()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def log(self) -> str:
        return self.process.log() if self.process else ""
