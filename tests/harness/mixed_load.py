"""A mixed load against :mod:`.faults_app`: the leak test's and the soak's client.

Raw HTTP/1.1 over kept-alive loopback connections (a full HTTP client would
cost more than the server it measures), in the proportions of a busy
application: coroutine and executor views, views that fail (exception views
and 500s), traversal, uploads, clients that leave mid-request, and websocket
conversations.  Every answer is checked against the status it must have.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.harness.servers import UNIT, wait_until

#: (method, target, body, expected status), taken in turn by each connection.
REQUESTS: list[tuple[str, str, bytes, int]] = [
    ("GET", "/hello", b"", 200),
    ("GET", "/plain", b"", 200),
    ("GET", "/hello", b"", 200),
    ("GET", "/view_error", b"", 418),
    ("GET", "/sleep?s=0.005", b"", 200),
    ("GET", "/await_error", b"", 418),
    ("GET", "/trav/a/b", b"", 200),
    ("POST", "/upload", b"x" * 2000, 200),
    ("GET", "/executor_error", b"", 418),
    ("GET", "/hello", b"", 200),
    ("GET", "/plain", b"", 200),
    ("GET", "/await_error", b"", 418),
    ("GET", "/trav/c", b"", 200),
    ("GET", "/hello", b"", 200),
    ("GET", "/view_error", b"", 418),
    ("GET", "/sleep?s=0.001", b"", 200),
    ("GET", "/plain", b"", 200),
    # Logged with its traceback: once in twenty, as the log would be noise.
    ("GET", "/unhandled", b"", 500),
]
#: One job in this many is a client that leaves mid-request; one in
#: ``WEBSOCKET_EVERY`` is a websocket conversation.
DISCONNECT_EVERY = 50
WEBSOCKET_EVERY = 100


@dataclass
class Stats:
    """What the load saw."""

    ok: int = 0
    disconnects: int = 0
    websockets: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Jobs done, failed ones included."""
        return self.ok + self.disconnects + self.websockets + len(self.failures)

    def p99_ms(self) -> float:
        """The 99th percentile of request latency, in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


class Connection:
    """One kept-alive HTTP/1.1 connection, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes) -> int:
        """Send one request and read the whole answer; return its status."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port
            )
        assert self.reader is not None
        head = f"{method} {target} HTTP/1.1\r\nHost: load\r\n"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode("latin-1") + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def leave_mid_request(port: int) -> None:
    """Ask for a long wait, then vanish: the server must unwind the request."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /sleep?s=30 HTTP/1.1\r\nHost: load\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.01)  # the input: a client leaving 10 ms after asking
    writer.transport.abort()


async def websocket_conversation(port: int) -> None:
    """Open /ws/echo, exchange two messages, close."""
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
        for message in ("one", b"two"):
            await ws.send(message)
            if await ws.recv() != message:
                raise AssertionError(f"echo of {message!r} differs")


async def run(
    port: int,
    *,
    total: int | None = None,
    seconds: float | None = None,
    connections: int = 32,
    timeout: float = 30.0,
) -> Stats:
    """Run ``total`` jobs (or for ``seconds``) over ``connections`` clients."""
    stats = Stats()
    jobs = itertools.count()
    deadline = time.monotonic() + seconds if seconds is not None else None

    def more() -> int | None:
        number = next(jobs)
        if total is not None and number >= total:
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None
        return number

    async def client(index: int) -> None:
        connection = Connection(port)
        turn = itertools.cycle(REQUESTS[index % len(REQUESTS) :] + REQUESTS)
        try:
            while (number := more()) is not None:
                started = time.perf_counter()
                try:
                    if number % DISCONNECT_EVERY == DISCONNECT_EVERY - 1:
                        await asyncio.wait_for(leave_mid_request(port), timeout)
                        stats.disconnects += 1
                        continue
                    if number % WEBSOCKET_EVERY == WEBSOCKET_EVERY - 2:
                        await asyncio.wait_for(websocket_conversation(port), timeout)
                        stats.websockets += 1
                        continue
                    method, target, body, expected = next(turn)
                    status = await asyncio.wait_for(
                        connection.request(method, target, body), timeout
                    )
                except Exception as error:  # counted as a failure, never raised
                    connection.close()
                    stats.failures.append(f"job {number}: {error!r}")
                    continue
                if status != expected:
                    stats.failures.append(f"{method} {target}: {status} != {expected}")
                    continue
                stats.latencies.append(time.perf_counter() - started)
                stats.ok += 1
        finally:
            connection.close()

    await asyncio.gather(*(client(index) for index in range(connections)))
    return stats


def counts(port: int) -> dict[str, Any]:
    """What is alive in the worker: the faults application's ``/counts``.

    On a connection the server closes after the answer: gunicorn keeps a
    task per connection for a while after the client has gone, which would
    blur the counts of the application's own tasks.
    """
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/counts", headers={"Connection": "close"}
    )
    with urllib.request.urlopen(request, timeout=30 * UNIT) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


def settled(port: int, baseline: dict[str, Any], seconds: float = 10) -> dict[str, Any]:
    """``/counts`` once greenlets and tasks are back to ``baseline``.

    After ``seconds`` (times UNIT) the counts as they are: the caller judges.
    """
    now: dict[str, Any] = {}

    def back() -> bool:
        now.update(counts(port))
        return all(now[key] == baseline[key] for key in ("greenlets", "tasks"))

    with contextlib.suppress(AssertionError):
        wait_until(back, seconds)
    return now
