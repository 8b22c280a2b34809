"""Websocket echo round trips and memory per idle connection, against bare websockets.

Run: ``python bench/websocket.py`` (needs ``pip install aiopyramid[gunicorn]
websockets``; uses uvloop and ``taskset`` when they are there).  For each
compression mode (off, then the default permessage-deflate) the servers run
side by side, each one process pinned to one core, the client (this process)
on the other core:

* aiopyramid: gunicorn with ``AsyncGunicornWorker``, one worker, an
  ``async def`` echo view through ``WebsocketMapper``
  (``bench/websocket_apps.py``);
* gunicorn -k asgi (compression off only): the same bridge and view on
  gunicorn's own ASGI worker, framed by gunicorn's websocket implementation
  instead of the ``websockets`` library;
* granian RSGI (compression off only: granian does not negotiate
  permessage-deflate): the same view through :mod:`aiopyramid.rsgi`, framed
  by granian, and granian alone, the echo as a bare RSGI application;
* uvicorn alone: the echo as a bare ASGI application under uvicorn, whose
  websocket protocol the worker uses, so that its own cost is visible;
* bare: the same echo on the ``websockets`` library's own asyncio server.

Measured:

1. round trips per second of one client sending a small text message and
   waiting for its echo, again and again; rounds alternate between the
   servers and the best round of each counts, so that a burst of load from
   elsewhere on the machine does not decide the ratio;
2. memory of the server process per idle connection: its RSS after 5,000
   connections are open (and have exchanged one message) minus its RSS
   before, divided by 5,000.

Targets: for the worker (issue 4), at least 0.8x the bare server's round
trips/s and at most 1.5x its memory per connection; for granian RSGI (issue
23), at least 1.0x and at most 1.0x.  Loopback only; about three minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.servers import WORKER, ServerProcess, console_script, free_port

MESSAGE = "hello, echo"
#: Each served-by-us row's targets: (round trips x bare, memory x bare).
TARGETS = {"aiopyramid worker": (0.8, 1.5), "aiopyramid on granian": (1.0, 1.0)}


def raise_fd_limit(wanted: int = 16384) -> None:
    """Allow ``wanted`` file descriptors (runs in the client and each server)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
        except (ValueError, OSError):
            wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def children(pid: int) -> list[int]:
    """Process ids of ``pid``'s children."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


@dataclass
class Server:
    """One echo server: its command line (``{port}`` stands for its port)."""

    name: str
    command: list[str]
    port: int = field(default_factory=free_port)
    process: ServerProcess | None = None

    @property
    def url(self) -> str:
        """Where the echo is served."""
        return f"ws://127.0.0.1:{self.port}/echo"

    def start(self, core: int | None, env: dict[str, str]) -> None:
        """Start the server (pinned to ``core`` if given); wait for its port."""
        command = [part.format(port=self.port) for part in self.command]
        if core is not None:
            command = ["taskset", "-c", str(core), *command]
        self.process = ServerProcess(
            command, self.port, env=env, preexec_fn=raise_fd_limit
        ).wait_ready(30)

    def serving_pid(self) -> int:
        """The process holding the connections: gunicorn's worker, or the server."""
        assert self.process is not None
        pid = self.process.process.pid
        workers = children(pid)
        if len(workers) == 1:
            return workers[0]
        return pid

    def stop(self) -> None:
        """Stop the server; remove its log."""
        if self.process is not None:
            self.process.stop()
            self.process.log_path.unlink(missing_ok=True)


@dataclass
class Result:
    """What was measured for one server in one compression mode."""

    server: Server
    compression: str
    rates: list[float] = field(default_factory=list)
    kib_per_connection: float = 0.0
    extension: str = ""

    @property
    def rate(self) -> float:
        """The best round: the one least disturbed by anything else."""
        return max(self.rates)


def servers(deflate: bool, uvloop: bool) -> list[Server]:
    """The aiopyramid worker, uvicorn alone and bare websockets, not yet started."""
    apps = "bench.websocket_apps"
    factory = f"{apps}:pyramid_app(deflate={deflate})"
    aiopyramid = Server(
        "aiopyramid worker",
        [
            *(sys.executable, "-m", "gunicorn", "--no-control-socket"),
            *("-k", WORKER, "-w", "1", "-b", "127.0.0.1:{port}"),
            # Idle websockets count against worker_connections (default 1000).
            *("--worker-connections", "20000", factory),
        ],
    )
    bare = [sys.executable, "-m", "bench.websocket_apps", "--port", "{port}"]
    if not deflate:
        bare.append("--no-deflate")
    if not uvloop:
        bare.append("--no-uvloop")
    uvicorn = Server(
        "uvicorn, ASGI echo",
        [
            *(sys.executable, "-m", "uvicorn", "--port", "{port}"),
            *("--loop", "uvloop" if uvloop else "asyncio", "--http", "httptools"),
            *("--ws-per-message-deflate", str(deflate).lower(), "--no-access-log"),
            *("--lifespan", "off", "bench.websocket_apps:asgi_echo"),
        ],
    )
    others = [uvicorn, Server("bare websockets", bare)]
    if deflate:
        return [aiopyramid, *others]
    granian = [
        *(console_script("granian"), "--interface", "rsgi", "--workers", "1"),
        *("--host", "127.0.0.1", "--port", "{port}", "--backlog", "16384"),
        *("--loop", "uvloop" if uvloop else "asyncio", "--log-level", "warning"),
    ]
    on_granian = [
        Server(
            "aiopyramid on granian", [*granian, "--factory", f"{apps}:pyramid_rsgi"]
        ),
        Server("granian alone, RSGI", [*granian, f"{apps}:rsgi_echo"]),
    ]
    gunicorn_own = Server(
        "gunicorn -k asgi",
        [
            *(sys.executable, "-m", "gunicorn", "--no-control-socket"),
            *("-k", "asgi", "-w", "1", "-b", "127.0.0.1:{port}"),
            *("--worker-connections", "20000", "bench.websocket_apps:pyramid_asgi()"),
        ],
    )
    return [aiopyramid, gunicorn_own, *on_granian, *others]


async def agreed_extension(server: Server, connect: Any) -> str:
    """One echo through a started server: the extensions its handshake agreed."""
    async with connect(server.url, open_timeout=30) as ws:
        await ws.send(MESSAGE)
        await ws.recv()
        return str(ws.response.headers.get("Sec-WebSocket-Extensions", ""))


async def round_trips(url: str, connect: Any, seconds: float) -> float:
    """Sequential echo round trips per second over one connection."""
    async with connect(url) as ws:
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            await ws.send(MESSAGE)
            await ws.recv()
            count += 1
            if count % 64 == 0 and time.perf_counter() >= deadline:
                break
        return count / (time.perf_counter() - started)


async def idle_cost(
    server: Server, connect: Any, connections: int, parallel: int
) -> float:
    """KiB of server RSS per open idle connection."""
    pid = server.serving_pid()
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    gate = asyncio.Semaphore(parallel)
    opened: list[Any] = []

    async def one() -> None:
        async with gate:
            ws = await connect(server.url, open_timeout=120)
            # One message each, so that each connection has reached the view
            # and allocated what a used connection holds.
            await ws.send(MESSAGE)
            await ws.recv()
            opened.append(ws)

    try:
        await asyncio.gather(*(one() for _ in range(connections)))
        await asyncio.sleep(1.0)  # let the server settle
        after = rss_kib(pid)
    finally:
        for ws in opened:
            ws.transport.abort()
    return (after - before) / connections


async def measure(args: argparse.Namespace, uvloop: bool) -> list[Result]:
    """Both compression modes, both servers; the results in table order."""
    from functools import partial

    from websockets.asyncio.client import connect as ws_connect

    results: list[Result] = []
    core = {"client": 0, "server": 1} if shutil.which("taskset") else None
    for deflate in (False, True):
        mode = "deflate" if deflate else "off"
        connect = partial(
            ws_connect,
            compression="deflate" if deflate else None,
            ping_interval=None,
        )
        pair = servers(deflate, uvloop)
        env = {} if uvloop else {"AIOPYRAMID_UVLOOP": "0"}
        here = [Result(server, mode) for server in pair]
        try:
            for server in pair:
                server.start(core["server"] if core else None, env)
            for result in here:
                result.extension = await agreed_extension(result.server, connect)
            for result in here:  # warm up
                await round_trips(result.server.url, connect, 0.5)
            for _ in range(args.rounds):
                for result in here:
                    rate = await round_trips(result.server.url, connect, args.seconds)
                    result.rates.append(rate)
            for result in here:
                result.kib_per_connection = await idle_cost(
                    result.server, connect, args.connections, args.parallel
                )
        finally:
            for server in pair:
                server.stop()
        results.extend(here)
    return results


def report(results: list[Result], args: argparse.Namespace, loop_name: str) -> None:
    """Print the table, with ratios to the bare server and the targets."""
    print(
        f"\nwebsocket echo ({len(MESSAGE)}-byte text, best of {args.rounds} rounds "
        f"of {args.seconds:g} s) and {args.connections:,} idle connections; "
        f"1 server process; loop: {loop_name} (client and every server)"
    )
    head = (
        f"{'compression':12} {'server':22} {'round trips/s':>13} {'x bare':>7} "
        f"{'KiB/conn':>9} {'x bare':>7}  agreed extension"
    )
    print(head)
    verdicts = []
    for result in results:
        bare = next(
            r
            for r in results
            if r.compression == result.compression and r.server.name.startswith("bare")
        )
        rate_ratio = result.rate / bare.rate
        memory_ratio = result.kib_per_connection / bare.kib_per_connection
        print(
            f"{result.compression:12} {result.server.name:22} {result.rate:>13,.0f} "
            f"{rate_ratio:>7.2f} {result.kib_per_connection:>9.1f} "
            f"{memory_ratio:>7.2f}  {result.extension or '-'}"
        )
        if result.server.name in TARGETS:
            rate_target, memory_target = TARGETS[result.server.name]
            verdicts.append(
                f"{result.compression}, {result.server.name}: round trips "
                f"{rate_ratio:.2f}x (target {rate_target}x, "
                f"{'met' if rate_ratio >= rate_target else 'MISSED'}), memory "
                f"{memory_ratio:.2f}x (target {memory_target}x, "
                f"{'met' if memory_ratio <= memory_target else 'MISSED'})"
            )
    print("targets: round trips at least, memory per connection at most, x bare")
    for verdict in verdicts:
        print("  " + verdict)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3, help="length of a round")
    parser.add_argument("--rounds", type=int, default=3, help="echo rounds per server")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--parallel", type=int, default=50, help="handshakes at once")
    parser.add_argument("--no-uvloop", action="store_true", help="asyncio's own loop")
    args = parser.parse_args()
    raise_fd_limit(args.connections * 2 + 1024)
    uvloop = not args.no_uvloop and importlib.util.find_spec("uvloop") is not None
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {0})
    else:
        print("taskset not found: processes are not pinned", file=sys.stderr)
    factory: Any = None
    if uvloop:
        import uvloop as uvloop_module

        factory = uvloop_module.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        results = runner.run(measure(args, uvloop))
    report(results, args, "uvloop" if uvloop else "asyncio")


if __name__ == "__main__":
    main()
