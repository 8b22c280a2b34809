"""The worker's HTTP/1 protocol in this process, writing to a transport that counts.

What ``bench/inprocess.py`` and ``bench/waiting.py`` drive:
``AsyncGunicornWorker``'s connection protocol (gunicorn's parser, environ,
greenlet, Pyramid with aiopyramid, the response's bytes) serving
``bench/serving_apps.py``'s application, with no socket and no worker
process, so that nothing but CPU is measured.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from gunicorn.config import Config

from aiopyramid.asgi import make_asgi_app
from aiopyramid.gunicorn._protocol import Protocol
from bench.serving_apps import make_app

#: ``bench/serving_apps.py``'s application without the loop watchdog: these
#: benches serve request after request without yielding to the loop, on
#: purpose, and the watchdog would log each second that they hold it.
app = make_app(**{"aiopyramid.watchdog.seconds": "0"})

REQUEST = (
    b"GET /coroutine HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\n\r\n"
)


class Transport:
    """Collects what the protocol writes (no socket: nothing but CPU is measured)."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def worker_state() -> SimpleNamespace:
    """The worker state the protocol reads; set its ``loop`` to the running one."""
    return SimpleNamespace(
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


def connection(worker: SimpleNamespace) -> Any:
    """A connection's protocol of ``worker``, with its transport and parser."""
    protocol = Protocol(worker)
    protocol.transport = Transport()
    protocol._setup_callback_parser()
    return protocol


def requests(protocol: Any, raw: bytes) -> Callable[[], Awaitable[None]]:
    """A coroutine function: each call, ``protocol`` serves the request ``raw``."""
    parser = protocol._callback_parser

    async def request() -> None:
        parser.feed(raw)
        await protocol._serve_http_request(
            protocol._current_request, ("127.0.0.1", 8000), ("127.0.0.1", 5000)
        )
        parser.reset()

    return request
