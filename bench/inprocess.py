"""CPU per request in one process, no network: what the bridge adds to Pyramid.

Run: ``python bench/inprocess.py`` (needs ``pip install aiopyramid[gunicorn]``).
Measured in one run, best of several rounds, in µs of CPU per request:

1. Pyramid alone: a hello-world plain view of an application without
   aiopyramid, called as WSGI (what any WSGI server would do, minus HTTP);
2. the worker's path: the request's bytes parsed by gunicorn's parser and
   served by ``AsyncGunicornWorker``'s direct path with a coroutine
   hello-world view: parsing, environ, greenlet, Pyramid with aiopyramid,
   and the response's bytes (HTTP framing at both ends included);
3. the ASGI bridge: the same view through :func:`aiopyramid.asgi.make_asgi_app`
   called with a ready ASGI scope and a ``send`` that does nothing, as
   uvicorn or hypercorn would call it (their parsing and framing excluded).

Issue 16's target: (2) and (3) cost at most 8 µs more than (1).
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving_apps import wsgi  # noqa: E402
from bench.worker_protocol import (  # noqa: E402
    REQUEST,
    app,
    connection,
    requests,
    worker_state,
)


def pyramid_alone() -> Any:
    """A WSGI call of the application without aiopyramid."""
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/plain",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    return b"".join(wsgi(environ, start_response))


def bridge_call() -> Any:
    from aiopyramid.asgi import make_asgi_app

    bridge = make_asgi_app(app)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/coroutine",
        "raw_path": b"/coroutine",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    return lambda: bridge(dict(scope), receive, send)


def best_of(rounds: int, count: int, step: Any) -> float:
    """Best µs per call of ``step`` over ``rounds`` rounds of ``count`` calls."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(count):
            step()
        best = min(best, (time.process_time() - started) / count * 1e6)
    return best


async def best_of_async(rounds: int, count: int, step: Any) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(count):
            await step()
        best = min(best, (time.process_time() - started) / count * 1e6)
    return best


async def measure(rounds: int, count: int) -> list[tuple[str, float]]:
    worker = worker_state()
    worker.loop = asyncio.get_running_loop()
    through_worker = requests(connection(worker), REQUEST)
    bridge = bridge_call()
    return [
        (
            "Pyramid alone (plain view, WSGI call)",
            best_of(rounds, count, pyramid_alone),
        ),
        (
            "worker's direct path, coroutine view",
            await best_of_async(rounds, count, through_worker),
        ),
        ("ASGI bridge, coroutine view", await best_of_async(rounds, count, bridge)),
    ]


def main() -> None:
    """Print the table."""
    rows = asyncio.run(measure(rounds=7, count=5000))
    alone = rows[0][1]
    print(f"{'':42} {'µs/request':>10} {'over Pyramid alone':>19}")
    for name, value in rows:
        print(f"{name:42} {value:10.1f} {value - alone:+18.1f}")
    print("target: at most +8.0 µs over Pyramid alone")


if __name__ == "__main__":
    main()
