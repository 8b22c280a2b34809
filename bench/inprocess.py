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
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving_apps import app, wsgi  # noqa: E402

REQUEST = (
    b"GET /coroutine HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\n\r\n"
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


class Transport:
    """Collects what the protocol writes (no socket: nothing but CPU is measured)."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def worker_protocol() -> Any:
    """The worker's connection protocol, with the worker state it reads."""
    from gunicorn.config import Config

    from aiopyramid.asgi import make_asgi_app
    from aiopyramid.gunicorn._protocol import Protocol

    worker = SimpleNamespace(
        cfg=Config(),
        log=SimpleNamespace(error_log=None, debug=lambda *a: None),
        asgi=make_asgi_app(app),
        access_log=None,
        nr_conns=0,
        nr=0,
        max_requests=sys.maxsize,
        alive=True,
        loop=None,
        head_timeout=None,
    )
    protocol = Protocol(worker)
    protocol.transport = Transport()
    protocol._setup_callback_parser()
    return protocol


async def through_worker(protocol: Any) -> None:
    protocol._callback_parser.feed(REQUEST)
    await protocol._serve_http_request(
        protocol._current_request, ("127.0.0.1", 8000), ("127.0.0.1", 5000)
    )
    protocol._callback_parser.reset()


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
    protocol = worker_protocol()
    protocol.worker.loop = asyncio.get_running_loop()
    bridge = bridge_call()
    return [
        (
            "Pyramid alone (plain view, WSGI call)",
            best_of(rounds, count, pyramid_alone),
        ),
        (
            "worker's direct path, coroutine view",
            await best_of_async(rounds, count, lambda: through_worker(protocol)),
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
