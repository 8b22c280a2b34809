"""A throwaway PostgreSQL server for the database tests and benches.

:class:`PostgresServer` makes a cluster of its own in a temporary folder
(``initdb``) and runs it on a free loopback port, with its unix socket in
that folder: it never uses the cluster a package install may have started on
port 5432.  Settings trade durability for speed, and as root the server runs
as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.harness.servers import UNIT, ServerProcess, free_port, require

#: What the harness runs, all from one folder of server binaries.
BINARIES = ("initdb", "postgres", "psql")
#: The drivers :meth:`PostgresServer.url` names, as SQLAlchemy spells them.
DRIVERS = ("asyncpg", "psycopg", "psycopg_async")
#: Small and fast: nothing a test writes has to survive a crash of the machine;
#: enough connections for load tests with several pools.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}
#: The names :meth:`PostgresServer.create_database` takes, which need no quoting.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def postgres_bin() -> Path | None:
    """The folder of the newest PostgreSQL server binaries, or ``None``."""

    def version(folder: Path) -> tuple[int, ...]:
        """The version a folder such as ``/usr/lib/postgresql/15/bin`` holds."""
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version)
    on_path = shutil.which("postgres")
    candidates = [*reversed(debian), *([Path(on_path).parent] if on_path else [])]
    for folder in candidates:
        if all((folder / name).is_file() for name in BINARIES):
            return folder
    return None


def database_name(module: str) -> str:
    """The database of test module ``module``: its dotted name under ``tests``."""
    name = re.sub(r"[^a-z0-9_]", "_", module.removeprefix("tests.").lower())
    return (f"_{name}" if name[:1].isdigit() else name)[:63]


class _Postmaster(ServerProcess):
    """The ``postgres`` process, ready once its lock file says it takes connections."""

    def __init__(self, args: list[str], port: int, *, data: Path, **options: Any):
        self.data = data
        super().__init__(args, port, **options)

    def is_ready(self) -> bool:
        """Whether ``postmaster.pid`` is this process's and says ``ready``."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:  # not written yet
            return False
        # A lock file left by a killed server is not this one's: compare pids.
        return (
            len(lines) > 7
            and lines[0] == str(self.process.pid)
            and lines[7].strip() == "ready"
        )


class PostgresServer:
    """A PostgreSQL cluster of its own on 127.0.0.1, which a test may restart.

    :meth:`start` makes the cluster, :meth:`restart` keeps its port and data,
    :meth:`stop` ends the server and removes the folder; as a context manager
    it starts and always stops.  The superuser ``postgres`` logs in without a
    password, over TCP (:meth:`url`) or the unix socket (:meth:`sql`).
    """

    def __init__(self) -> None:
        found = postgres_bin()
        require(found is not None, "apt-get install postgresql")
        assert found is not None
        self.bin = found
        # As root, the server runs as postgres: root may not run it.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            require(_has_user(self.user), "apt-get install postgresql")
        self.port = free_port()
        #: The temporary folder: data, unix socket and logs (``None`` if stopped).
        self.directory: Path | None = None
        self.process: _Postmaster | None = None
        self._logs: list[Path] = []
        self._last_log = ""

    def __enter__(self) -> PostgresServer:
        """Start the server, or clean up and re-raise if it does not start."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server and remove its folder."""
        self.stop()

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        assert self.directory is not None, "the server is stopped: start() it"
        return self.directory / "data"

    def start(self, timeout: float = 30) -> PostgresServer:
        """Make a fresh cluster and start it; even if that fails, :meth:`stop` it."""
        assert self.directory is None, "the server runs already: restart() it"
        directory = Path(tempfile.mkdtemp(prefix="aiopyramid-postgres-"))
        self.directory, self._logs, self._last_log = directory, [], ""
        if self.user is not None:
            account = pwd.getpwnam(self.user)
            os.chown(directory, account.pw_uid, account.pw_gid)
        initdb = [
            str(self.bin / "initdb"),
            *("-D", str(self.data), "-A", "trust", "-U", "postgres"),
            *("--encoding=UTF8", "--locale=C", "--no-sync"),
        ]
        result = subprocess.run(
            initdb,
            capture_output=True,
            text=True,
            cwd=directory,
            timeout=60 * UNIT,
            **_run_as(self.user),
        )
        if result.returncode:
            pytest.fail(
                f"initdb exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        self._launch(timeout)
        return self

    def _launch(self, timeout: float) -> None:
        """Run ``postgres`` on the cluster, logging to a new file, until ready."""
        assert self.directory is not None
        log = self.directory / f"postgres-{len(self._logs) + 1}.log"
        self._logs.append(log)
        settings = [f"{name}={value}" for name, value in SETTINGS.items()]
        command = [
            str(self.bin / "postgres"),
            *("-D", str(self.data), "-p", str(self.port), "-k", str(self.directory)),
            *(part for setting in settings for part in ("-c", setting)),
        ]
        # SIGINT is PostgreSQL's fast shutdown: it ends the sessions and stops
        # at once, where SIGTERM would wait for every client to leave.
        self.process = _Postmaster(
            command,
            self.port,
            data=self.data,
            cwd=self.directory,
            log=log,
            stop_signal=signal.SIGINT,
            user=self.user,
        )
        self.process.wait_ready(timeout)

    def restart(self, timeout: float = 30) -> None:
        """Stop the server and start it again on the same port, with the same data."""
        assert self.directory is not None, "the server is stopped: start() it"
        self._stop_process()
        self._launch(timeout)

    def _stop_process(self) -> None:
        """Stop ``postgres`` if it runs, keeping the cluster."""
        if self.process is not None:
            self.process.stop()
            self.process = None

    def stop(self) -> None:
        """Stop the server and remove its folder, whatever state it is in."""
        self._stop_process()
        if self.directory is not None:
            self._last_log = self.log()
            shutil.rmtree(self.directory)
            self.directory = None

    def url(self, database: str, driver: str = "asyncpg") -> str:
        """SQLAlchemy's URL of ``database`` through ``driver``, one of :data:`DRIVERS`.

        ``psycopg`` (psycopg 3) serves both ``create_engine`` and
        ``create_async_engine``; ``psycopg_async`` is for the latter only.
        """
        if driver not in DRIVERS:
            raise ValueError(f"unknown driver {driver!r}: use one of {DRIVERS}")
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, database: str, statement: str) -> str:
        """Run ``statement`` in ``database`` by psql: rows a line each, ``|`` between.

        For setup and inspection; a failing statement raises AssertionError.
        """
        assert self.directory is not None, "the server is stopped: start() it"
        command = [
            str(self.bin / "psql"),
            *("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
            *("-h", str(self.directory), "-p", str(self.port), "-U", "postgres"),
            *("-d", database, "-c", statement),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30 * UNIT
        )
        if result.returncode:
            raise AssertionError(
                f"psql exited with {result.returncode} on {statement!r}:\n"
                f"{result.stderr}"
            )
        return result.stdout.removesuffix("\n")

    def create_database(self, name: str) -> str:
        """Create the empty database ``name`` (a lower-case identifier); return it."""
        if not IDENTIFIER.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a plain identifier: use lower-case letters, "
                "digits and underscores, at most 63, not starting with a digit"
            )
        self.sql("postgres", f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop the database ``name``, ending the sessions still connected to it."""
        if not IDENTIFIER.fullmatch(name):
            raise ValueError(f"{name!r} is not a database create_database() made")
        self.sql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def log(self) -> str:
        """What the server logged, across restarts (still there after :meth:`stop`)."""
        if self.directory is None:
            return self._last_log
        return "".join(
            path.read_text(errors="replace") for path in self._logs if path.exists()
        )


def _has_user(name: str) -> bool:
    """Whether the system has a user ``name``."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _run_as(user: str | None) -> dict[str, Any]:
    """``subprocess.run`` options running as ``user``, in its group only."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
