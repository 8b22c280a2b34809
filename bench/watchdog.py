"""Cost of the loop watchdog: a hello request in process, watchdog on and off.

Run: ``python bench/watchdog.py``.  Each run serves ``-n`` GET requests one
after the other through :class:`aiopyramid.asgi.ASGIBridge` on a fresh loop
(the watchdog decides per loop), to a coroutine view answering ``Hello``;
runs with the watchdog on (the default, 1 s) and off (``0``) alternate.
Prints the best microseconds per request of each, then what the per-request
hook (:func:`aiopyramid._watchdog.ensure_watched` on a known loop) costs on
its own.  Compare figures only within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiopyramid._watchdog import ensure_watched
from aiopyramid.asgi import ASGIBridge, make_asgi_app
from tests.harness.asgi_client import http_scope

SCOPE = http_scope("/", [(b"host", b"bench")])


async def hello(request: Any) -> Response:
    return Response("Hello")


def bridge(watchdog: str) -> ASGIBridge:
    """The hello application, with ``aiopyramid.watchdog.seconds = watchdog``."""
    config = Configurator(settings={"aiopyramid.watchdog.seconds": watchdog})
    config.include("aiopyramid")
    config.add_route("hello", "/")
    config.add_view(hello, route_name="hello")
    return make_asgi_app(config.make_wsgi_app())


async def serve(app: ASGIBridge, n: int) -> float:
    """Seconds that ``n`` requests take, one after the other."""

    async def receive() -> dict[str, Any]:
        raise AssertionError("a GET has no body to receive")

    async def send(message: dict[str, Any]) -> None:
        pass

    await app(dict(SCOPE), receive, send)  # the loop is watched (or not) now
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(SCOPE), receive, send)
    return time.perf_counter() - started


async def hook(app: ASGIBridge, n: int) -> float:
    """Seconds that ``n`` calls of the per-request hook take on a known loop.

    The HTTP half passes the loop of the task it already looked up, as here.
    """
    loop = asyncio.get_running_loop()
    ensure_watched(app.registry, loop)
    started = time.perf_counter()
    for _ in range(n):
        ensure_watched(app.registry, loop)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000, help="requests per run")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    apps = {"on (1 s)": bridge("1"), "off": bridge("0")}
    best = dict.fromkeys(apps, float("inf"))
    for _ in range(args.repeats):
        for name, app in apps.items():
            best[name] = min(best[name], asyncio.run(serve(app, args.n)))
    for name, seconds in best.items():
        print(f"watchdog {name:<9}{seconds / args.n * 1e6:8.2f} µs/request")
    calls = 1_000_000
    seconds = min(asyncio.run(hook(apps["on (1 s)"], calls)) for _ in range(3))
    print(f"ensure_watched, known loop {seconds / calls * 1e9:6.0f} ns/call")


if __name__ == "__main__":
    main()
