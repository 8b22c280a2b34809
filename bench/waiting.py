"""CPU per request of a coroutine that waits, in one process: where it goes.

Run: ``python bench/waiting.py`` (needs ``pip install aiopyramid[gunicorn]
uvloop``; about a minute).  A thousand "connections" run at once on one
uvloop loop, each serving requests one after another, with no network (the
worker's protocol writes into a transport that only counts); µs of CPU per
request, for:

1. a bare task awaiting ``asyncio.sleep(0.1)``: the sleep itself (its
   future, its timer, the task's wake-up);
2. plain code in a child greenlet waiting for the same sleep through
   :func:`aiopyramid.helpers`' machinery (``run_in_child_greenlet`` and
   ``wait_for``): the greenlet switches and the driver;
3. the worker's direct HTTP/1 path (gunicorn's parser, environ, Pyramid,
   response bytes) with a hello-world coroutine view, and
4. with a coroutine view awaiting ``asyncio.sleep(0.1)``;

each under three garbage collector settings, what is alive at the start
frozen (as the worker does): Python's own thresholds (700, 10, 10), the
collector off (what the rest costs), and the worker's first threshold
(:data:`aiopyramid._collector.DEFAULT_GC_THRESHOLD`).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.worker_protocol import REQUEST, connection, requests, worker_state

WAIT_REQUEST = REQUEST.replace(b"/coroutine", b"/wait_coroutine")
CONNECTIONS = 1000
SECONDS = 3.0


async def served(
    connections: int, make: Callable[[], Callable[[], Awaitable[Any]]]
) -> float:
    """µs of CPU per request of ``connections`` loops of ``make()``'s requests."""
    stop = False
    count = 0

    async def connection(request: Callable[[], Awaitable[Any]]) -> None:
        nonlocal count
        while not stop:
            await request()
            count += 1
            # As a connection waits for its next request: others run.
            await asyncio.sleep(0)

    tasks = [asyncio.ensure_future(connection(make())) for _ in range(connections)]
    await asyncio.sleep(0.5)  # every connection under way
    before, started = count, time.process_time()
    await asyncio.sleep(SECONDS)
    done, cpu = count - before, time.process_time() - started
    stop = True
    await asyncio.gather(*tasks)
    return cpu / done * 1e6


def bare_sleep() -> Callable[[], Awaitable[Any]]:
    return lambda: asyncio.sleep(0.1)


def greenlet_sleep() -> Callable[[], Awaitable[Any]]:
    from aiopyramid._bridge import wait_for
    from aiopyramid._greenlets import run_in_child_greenlet

    def plain() -> Any:
        return wait_for(asyncio.sleep(0.1))

    return lambda: run_in_child_greenlet(plain)


def worker_path(raw: bytes) -> Callable[[], Callable[[], Callable[[], Awaitable[Any]]]]:
    """Connections of the worker's protocol, each serving ``raw`` requests."""
    worker = worker_state()

    def make() -> Callable[[], Awaitable[Any]]:
        worker.loop = asyncio.get_running_loop()
        return requests(connection(worker), raw)

    return make


async def measure() -> None:
    from aiopyramid._collector import DEFAULT_GC_THRESHOLD

    rows = [
        ("bare task, await sleep(0.1)", bare_sleep),
        ("child greenlet, wait_for(sleep(0.1))", greenlet_sleep),
        ("worker's direct path, coroutine hello", worker_path(REQUEST)),
        ("worker's direct path, 100 ms wait", worker_path(WAIT_REQUEST)),
    ]
    collectors = [
        ("Python's (700)", (700, 10, 10), True),
        ("collector off", (700, 10, 10), False),
        (f"worker's ({DEFAULT_GC_THRESHOLD})", (DEFAULT_GC_THRESHOLD, 10, 10), True),
    ]
    print(f"{CONNECTIONS} connections at once, µs of CPU per request, collector:")
    print(f"{'':40}" + "".join(f" {name:>18}" for name, _, _ in collectors))
    for label, make in rows:
        figures = []
        for _, thresholds, enabled in collectors:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            gc.set_threshold(*thresholds)
            (gc.enable if enabled else gc.disable)()
            try:
                figures.append(await served(CONNECTIONS, make))
            finally:
                gc.enable()
                gc.set_threshold(700, 10, 10)
        print(f"{label:40}" + "".join(f" {value:>18.1f}" for value in figures))


def main() -> None:
    """Print the table."""
    import uvloop

    uvloop.run(measure())


if __name__ == "__main__":
    main()
