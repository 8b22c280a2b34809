"""A gunicorn worker that serves Pyramid on an asyncio event loop.

``gunicorn -k aiopyramid.gunicorn.worker.AsyncGunicornWorker myapp:app`` (or
``worker_class = aiopyramid.gunicorn.worker.AsyncGunicornWorker`` in the
``[server:main]`` section that ``pserve`` reads) keeps gunicorn's process
model (the arbiter, sockets, signals, logging, ``max_requests``) and serves
each worker's requests with uvicorn's HTTP server on one event loop, through
:mod:`aiopyramid.asgi`.  Coroutine views run on that loop; plain views run in
its thread pool.

Gunicorn settings honoured: ``bind`` (TCP and unix sockets), ``workers``,
``threads`` (size of the pool for plain views), ``timeout``,
``graceful_timeout``, ``keepalive``, ``max_requests`` and
``max_requests_jitter``, ``limit_request_line``, ``limit_request_fields``,
``limit_request_field_size``, ``forwarded_allow_ips``, ``backlog``, TLS
(``certfile``, ``keyfile``, ``ca_certs``, ``cert_reqs``), ``accesslog`` with
``access_log_format``, ``errorlog``, ``loglevel`` and ``reload``.

Application settings (the ``[app:main]`` section) read by the worker:

* ``aiopyramid.uvloop`` (default true): use uvloop when it is installed;
* ``aiopyramid.max_body_size``: largest request body, answered 413 above it;
* ``aiopyramid.request_head_timeout`` (default 30): seconds a client may take
  to send a request's line and headers, counted from the connection (or the
  end of the previous response on a kept-alive one); slower clients
  (slowloris) are disconnected.  ``0`` turns the limit off;
* ``aiopyramid.websocket.max_size``, ``.ping_interval``, ``.ping_timeout``,
  ``.per_message_deflate``: websocket limits and keepalive.

The environment variable ``AIOPYRAMID_UVLOOP=0`` also turns uvloop off.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib.util
import logging
import os
import sys
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

try:
    import uvicorn
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"AsyncGunicornWorker needs gunicorn and uvicorn ({error}). Install "
        "them with `pip install aiopyramid[gunicorn]`."
    ) from error

from pyramid.settings import asbool

from ..asgi import ASGIBridge, Limits, make_asgi_app

__all__ = ["AsyncGunicornWorker"]

log = logging.getLogger("aiopyramid.gunicorn")


def _flag(value: Any, default: bool) -> bool:
    """A boolean setting read the way Pyramid reads its own; unset: ``default``."""
    return default if value is None or value == "" else asbool(value)


class _GunicornResponse:
    """What gunicorn's access log formatter reads from a response."""

    def __init__(self, status: str, headers: list[tuple[str, str]], sent: int) -> None:
        self.status = status
        self.headers = headers
        self.sent = sent


class _HeadTimeout:
    """Mixin for uvicorn's HTTP protocols: drop clients slow to send a head.

    uvicorn times out idle kept-alive connections but not a request head
    that trickles in, so one slow client could hold a connection forever.
    A timer started when a head is awaited closes the connection unless the
    protocol has begun a new request cycle (its head complete) meanwhile.
    """

    head_timeout: float
    _head_timer: asyncio.TimerHandle | None = None
    _head_cycle: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        # A response may complete after its client left: no timer then.
        protocol: Any = self
        if not protocol.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def _await_head(self) -> None:
        protocol: Any = self
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_cycle = protocol.cycle
        # The timer holds the protocol weakly: after a websocket upgrade
        # this protocol is done with (connection_lost goes to the websocket
        # one), and a pending timer must not keep it alive.
        self._head_timer = protocol.loop.call_later(
            self.head_timeout, _head_timed_out, weakref.ref(self)
        )


def _head_timed_out(reference: weakref.ref[_HeadTimeout]) -> None:
    protocol: Any = reference()
    if protocol is None:
        return
    protocol._head_timer = None
    transport = protocol.transport
    # A new cycle means the head came in time; a transport handed to a
    # websocket protocol is that protocol's business now.
    if (
        protocol.cycle is protocol._head_cycle
        and not transport.is_closing()
        and transport.get_protocol() is protocol
    ):
        log.info("Request head not received in time: closing the connection")
        transport.close()


def _with_head_timeout(http: str, seconds: float) -> Any:
    """uvicorn's protocol class for ``http``, with the head timeout mixed in."""
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base  # type: ignore[assignment]
    return type(
        f"{base.__name__}WithHeadTimeout",
        (_HeadTimeout, base),
        {"head_timeout": seconds},
    )


class _Server(uvicorn.Server):
    """uvicorn's server, steered by the gunicorn worker around it."""

    def __init__(self, config: uvicorn.Config, worker: AsyncGunicornWorker) -> None:
        super().__init__(config)
        self.worker = worker
        self.notified = 0.0

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals to gunicorn's handlers, which the arbiter relies on."""
        yield

    async def on_tick(self, counter: int) -> bool:
        """Every 0.1 s: heartbeat, and stop when gunicorn says so."""
        worker = self.worker
        now = time.monotonic()
        # The heartbeat comes from the loop itself: a loop blocked by a view
        # stops it, and the arbiter restarts the worker after `timeout`.
        if now - self.notified >= worker.timeout / 2:
            self.notified = now
            worker.notify()
        if worker.ppid != os.getppid():
            worker.log.info("Parent changed, shutting down: %s", worker)
            worker.alive = False
        if not worker.alive:
            self.should_exit = True
            self.force_exit = worker.quick_exit
        return await super().on_tick(counter)


class AsyncGunicornWorker(Worker):  # type: ignore[misc]
    """Gunicorn worker running Pyramid on uvicorn's asyncio HTTP server.

    One event loop per worker process; each request runs in a greenlet of
    that loop through :class:`aiopyramid.asgi.ASGIBridge`.  Set
    :attr:`use_uvloop` to ``False`` in a subclass (or the
    ``aiopyramid.uvloop`` setting to ``false``) to keep asyncio's own loop.
    """

    #: Use uvloop when it is installed (the default of the setting).
    use_uvloop: bool = True
    quick_exit = False
    asgi: ASGIBridge

    # -- gunicorn's hooks --------------------------------------------------
    def load_wsgi(self) -> None:
        """Load the WSGI application and wrap it in the ASGI bridge."""
        super().load_wsgi()
        cfg = self.cfg
        limits = Limits(
            request_line=cfg.limit_request_line,
            request_fields=cfg.limit_request_fields,
            request_field_size=cfg.limit_request_field_size,
        )
        logger = self._access_logger if self._access_log_enabled() else None
        max_size = self.setting("aiopyramid.max_body_size")
        self.asgi = make_asgi_app(
            self.wsgi,
            max_body_size=int(max_size) if max_size else None,
            limits=limits,
            access_logger=logger,
            # As gunicorn's own workers say: one worker is one process.
            multiprocess=cfg.workers > 1,
        )

    def run(self) -> None:
        """Serve until gunicorn (or ``max_requests``) says stop."""
        loop = self._new_loop()
        asyncio.set_event_loop(loop)
        if self.cfg.threads > 1:
            loop.set_default_executor(
                ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="aiopyramid")
            )
        server = _Server(self._uvicorn_config(), self)
        try:
            loop.run_until_complete(
                server.serve(sockets=[s.sock for s in self.sockets])
            )
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """SIGQUIT/SIGINT: stop now, cancelling requests in flight."""
        self.alive = False
        self.quick_exit = True
        self.cfg.worker_int(self)

    # -- settings ------------------------------------------------------------
    def setting(self, name: str, default: Any = None) -> Any:
        """Return the Pyramid application's setting ``name`` (or ``default``)."""
        registry = getattr(getattr(self, "wsgi", None), "registry", None)
        settings = getattr(registry, "settings", None) or {}
        return settings.get(name, default)

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        wanted = _flag(self.setting("aiopyramid.uvloop"), self.use_uvloop)
        wanted = _flag(os.environ.get("AIOPYRAMID_UVLOOP"), wanted)
        if wanted and importlib.util.find_spec("uvloop") is not None:
            import uvloop

            return uvloop.new_event_loop()
        return asyncio.new_event_loop()

    def _uvicorn_config(self) -> uvicorn.Config:
        cfg = self.cfg
        has_httptools = importlib.util.find_spec("httptools") is not None
        http: Any = "httptools" if has_httptools else "h11"
        value = self.setting("aiopyramid.request_head_timeout")
        head_timeout = float(value) if value not in (None, "") else 30.0
        if head_timeout > 0:
            http = _with_head_timeout(http, head_timeout)
        options: dict[str, Any] = {
            "app": self.asgi,
            "loop": "none",
            "http": http,
            "interface": "asgi3",
            "lifespan": "off",
            "log_config": None,
            "access_log": False,
            "server_header": False,
            "proxy_headers": True,
            "forwarded_allow_ips": cfg.forwarded_allow_ips,
            "timeout_keep_alive": cfg.keepalive,
            "timeout_graceful_shutdown": cfg.graceful_timeout,
            "limit_max_requests": self.max_requests if cfg.max_requests else None,
            "backlog": cfg.backlog,
            "ws_max_size": int(self.setting("aiopyramid.websocket.max_size", 2**24)),
            "ws_per_message_deflate": _flag(
                self.setting("aiopyramid.websocket.per_message_deflate"), True
            ),
        }
        for name in ("ping_interval", "ping_timeout"):
            value = self.setting(f"aiopyramid.websocket.{name}", 20.0)
            options[f"ws_{name}"] = float(value) if value not in ("", "none") else None
        if cfg.is_ssl:
            options.update(
                ssl_certfile=cfg.certfile,
                ssl_keyfile=cfg.keyfile,
                ssl_ca_certs=cfg.ca_certs,
                ssl_cert_reqs=cfg.cert_reqs,
            )
        # uvicorn's own messages (startup, shutdown, application errors) go
        # to gunicorn's error log, at gunicorn's level.
        error_log = self.log.error_log
        for name in ("uvicorn", "uvicorn.error", "aiopyramid"):
            logger = logging.getLogger(name)
            logger.handlers = list(error_log.handlers)
            logger.setLevel(error_log.level)
            logger.propagate = False
        return uvicorn.Config(**options)

    # -- access log ----------------------------------------------------------
    def _access_log_enabled(self) -> bool:
        enabled = getattr(self.log, "access_log_enabled", None)
        if enabled is None:  # gunicorn before 24
            return bool(self.cfg.accesslog)
        return bool(enabled)

    def _access_logger(
        self,
        environ: dict[str, Any],
        status: str,
        headers: list[tuple[str, str]],
        sent: int,
        seconds: float,
    ) -> None:
        request_headers = [
            (name.decode("latin-1").upper(), value.decode("latin-1"))
            for name, value in environ["asgi.scope"]["headers"]
        ]
        self.log.access(
            _GunicornResponse(status, headers, sent),
            request_headers,
            environ,
            datetime.timedelta(seconds=seconds),
        )
