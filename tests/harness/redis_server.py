"""A private redis-server for the broadcast tests and benches."""

from __future__ import annotations

import shutil

from tests.harness.servers import ServerProcess, free_port, require

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_command(port: int) -> list[str]:
    """redis-server on 127.0.0.1:``port``, without persistence."""
    return [
        REDIS,
        *("--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no"),
    ]


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
        """Start (or restart) the server on its port."""
        self.process = ServerProcess(redis_command(self.port), self.port).wait_ready()

    def stop(self) -> None:
        """Stop the server; :meth:`start` brings it back on the same port."""
        if self.process is not None:
            self.process.stop()
            self.process = None

    def log(self) -> str:
        """What the running server logged so far."""
        return self.process.log() if self.process else ""
