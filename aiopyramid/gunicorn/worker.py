"""A gunicorn worker that serves Pyramid on an asyncio event loop.

``gunicorn -k aiopyramid.gunicorn.worker.AsyncGunicornWorker myapp:app`` (or
``worker_class = aiopyramid.gunicorn.worker.AsyncGunicornWorker`` in the
``[server:main]`` section that ``pserve`` reads) is gunicorn's own ASGI worker
(``-k asgi``: its HTTP/1.1 parser, limits, HTTP/2, PROXY protocol, websockets,
access log and signals) serving the Pyramid WSGI application through
:mod:`aiopyramid.asgi`.  Coroutine views run on the worker's loop; plain views
run in its thread pool.  Every gunicorn setting is read by gunicorn itself.

What this subclass adds is only what is aiopyramid's:

* it loads the WSGI application the ways gunicorn users do (``module:app``,
  ``--paste``, ``pserve``) and serves it through
  :func:`aiopyramid.asgi.make_asgi_app`, with the application's
  ``aiopyramid.*`` settings (``aiopyramid.max_body_size``,
  ``aiopyramid.body_timeout``, ...);
* ``threads`` sizes the pool that runs plain views (gunicorn's ASGI worker
  has no use for it and warns; here it means something);
* ``aiopyramid.uvloop`` (default true) and the environment variable
  ``AIOPYRAMID_UVLOOP=0`` choose the loop when gunicorn's ``asgi_loop`` is
  left at ``auto``;
* ``aiopyramid.request_head_timeout`` (default 30 seconds, ``0``: off)
  closes a connection whose first request head is not complete in time
  (slowloris); later heads are bounded by gunicorn's ``keepalive``;
* websockets are framed by the ``websockets`` library rather than gunicorn
  (:mod:`aiopyramid.gunicorn._websocket`), with keepalive pings
  (``aiopyramid.websocket.ping_interval`` and ``.ping_timeout``, default 20
  seconds each, ``none`` or ``0``: off) and permessage-deflate
  (``aiopyramid.websocket.per_message_deflate``, default true);
  ``aiopyramid.websocket.max_size`` (default 1 MiB) is the largest
  message unless gunicorn's ``websocket_max_message_size`` is given, and
  ``aiopyramid.websocket.max_queue_bytes`` (default 1 MiB) the bytes of
  received messages a connection may hold for its view;
* ``SCRIPT_NAME`` in the environment (``--env SCRIPT_NAME=/app``), which
  gunicorn's WSGI workers honour, sets ``root_path`` when it is not set;
* ``worker_connections`` and ``header_map`` reach the bridge, which answers
  ``503`` past the first (gunicorn's ASGI worker does not enforce it);
  websockets have a budget of their own
  (``aiopyramid.websocket.max_connections``, default 1000), past which a
  handshake gets ``503`` with ``Retry-After``;
* ``aiopyramid.send_timeout`` (default 30 seconds, ``0``: off): a client
  that takes none of its response (HTTP/1, an HTTP/2 stream, a websocket's
  messages) for that long is disconnected (its stream reset, on HTTP/2);
  a response waiting for its client does not hold a request slot, and
  holds one piece of its body (64 KiB, 16 KiB on HTTP/2) beyond the
  transport's limit;
* ``aiopyramid.gc_freeze`` (default true): once the application is loaded,
  what is alive is frozen out of the garbage collector (``gc.freeze()``),
  so that full collections stay short and do not hold the loop;
* ``aiopyramid.gc_threshold`` (default 50000, ``0``: Python's own, 700):
  the garbage collector's first threshold (``gc.set_threshold``), how many
  more objects must be made than freed before the youngest generation is
  collected.  With many requests waiting at once, Python's 700 collected
  every few requests and promoted what the waiting requests held into
  the oldest generation, whose full collections then held the loop for
  tens of milliseconds (``docs/benchmarks.rst``);
* the worker's loop is watched (``aiopyramid.watchdog.seconds``, default 1
  second): a loop held longer is logged, with the stack of what holds it,
  in gunicorn's error log while it is held.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

try:
    from gunicorn.workers import gasgi
    from gunicorn.workers.gasgi import ASGIWorker

    from ._access import AccessLog, Logged
    from ._protocol import Protocol
    from ._websocket import Settings
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"AsyncGunicornWorker needs gunicorn 27 or later and websockets 13 or "
        f"later ({error}). Install them with `pip install aiopyramid[gunicorn]`."
    ) from error

from pyramid.settings import asbool

from .._collector import DEFAULT_GC_THRESHOLD, collector_settings, tune_collector
from .._settings import limit_setting, websocket_max_size
from .._watchdog import ensure_watched
from ..asgi import ASGIBridge, Limits, make_asgi_app

__all__ = ["AsyncGunicornWorker"]


def _flag(value: Any, default: bool) -> bool:
    """A boolean setting read the way Pyramid reads its own; unset: ``default``."""
    return default if value is None or value == "" else asbool(value)


def _seconds(settings: dict[str, Any], name: str, default: float) -> float | None:
    """A duration setting: ``default`` when unset, ``None`` for ``0`` or ``none``."""
    value = settings.get(name)
    if value is not None and str(value).strip().lower() in ("none", "off", "false"):
        return None
    return limit_setting(
        settings,
        name,
        float,
        default,
        f"Write e.g. {name} = {default:g}, or 0 to turn it off.",
        what="a number of seconds",
    )


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.startswith("uvloop")


class AsyncGunicornWorker(ASGIWorker):  # type: ignore[misc]
    """gunicorn's ASGI worker serving a Pyramid (WSGI) application.

    One event loop per worker process; each request runs in a greenlet of
    that loop through :class:`aiopyramid.asgi.ASGIBridge`.  Set
    :attr:`use_uvloop` to ``False`` in a subclass (or the
    ``aiopyramid.uvloop`` setting to ``false``) to keep asyncio's own loop.
    """

    #: Use uvloop when it is installed (the default of the setting).
    use_uvloop: bool = True
    asgi: ASGIBridge
    #: Seconds a connection has to send its first request head (``None``: no limit).
    head_timeout: float | None = 30.0
    #: How the worker's websockets are served (from the application's settings).
    websocket_settings: Settings = Settings()
    #: The loop serving this worker (set up by gunicorn's worker).
    loop: asyncio.AbstractEventLoop
    #: Writes the access log of plain HTTP/1 requests (``None``: it is off).
    access_log: AccessLog | None = None
    _backlog_restored = False
    #: Whether what is alive once the application is loaded is frozen.
    gc_freeze: bool = True
    #: The collector's first threshold in this worker (``None``: Python's).
    gc_threshold: int | None = DEFAULT_GC_THRESHOLD

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Accept ``threads``: here it sizes the plain views' pool."""

    def load_wsgi(self) -> None:
        """Load the WSGI application and serve it through the ASGI bridge."""
        # gunicorn's ASGI worker expects `app.wsgi()` to return an ASGI
        # application; for us it returns the Pyramid WSGI one, loaded by
        # gunicorn (module:app, --paste, pserve) exactly as for `-k sync`.
        wsgi = self.app.wsgi()
        self.wsgi = wsgi
        # Plain application errors reach gunicorn's error log, at its level.
        error_log = self.log.error_log
        logger = logging.getLogger("aiopyramid")
        logger.handlers = list(error_log.handlers)
        logger.setLevel(error_log.level)
        logger.propagate = False
        self._choose_loop()
        if self.cfg.threads > 1:
            self.loop.set_default_executor(
                ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="aiopyramid")
            )
        script_name = os.environ.get("SCRIPT_NAME", "").rstrip("/")
        if script_name and not self.cfg.root_path:
            # gunicorn's WSGI workers take SCRIPT_NAME from the environment
            # (``--env SCRIPT_NAME=/app``); its ASGI worker reads only
            # root_path, which is the same thing for us.
            self.cfg.set("root_path", script_name)
        self._read_timeouts()
        self.access_log = AccessLog.for_worker(self.log, self.cfg)
        self.asgi = make_asgi_app(
            wsgi,
            # gunicorn's parser enforces limit_request_* itself, and its
            # access log has a line for every request: nothing to add here.
            limits=Limits(0, 0, 0),
            access_logger=None,
            # As gunicorn's own workers say: one worker is one process.
            multiprocess=self.cfg.workers > 1,
            # gunicorn has already applied header_map to the scope's headers
            # (keeping the ones a trusted proxy may send): the same choice.
            header_map=self.cfg.header_map,
            # gunicorn 27's ASGI worker accepts connections past
            # worker_connections: the bridge answers 503 past it instead.
            max_concurrency=self.cfg.worker_connections,
            # gunicorn's access log has no line for a websocket: the bridge
            # writes them there, in the configured access_log_format.
            websocket_logger=self.log_websocket,
        )

    def run(self) -> None:
        """Serve each connection with our protocol (:mod:`._protocol`)."""
        # gunicorn's ASGI worker has no setting for its protocol class: its
        # `_serve` makes each connection's protocol with `ASGIProtocol(self)`,
        # the name gunicorn.workers.gasgi imported.  That name is pointed at
        # our subclass, in this worker process only (the arbiter forked it);
        # tests/gunicorn/test_hooks.py fails if `_serve` stops using it.
        gasgi.ASGIProtocol = Protocol
        # What is alive now lives as long as the worker: out of the
        # collector's reach; and a first threshold for many requests waiting
        # at once (aiopyramid._collector says why).
        tune_collector(self.gc_freeze, self.gc_threshold)
        # The loop is final now (_choose_loop): watch it from its first turn,
        # as the application's aiopyramid.watchdog.seconds says.
        ensure_watched(getattr(self.wsgi, "registry", None), self.loop)
        try:
            super().run()
        finally:
            if self.access_log is not None:
                self.access_log.flush()  # the lines of the last turn

    def _read_timeouts(self) -> None:
        """The head deadline, the collector's threshold and the websocket settings."""
        settings = self.app_settings()
        self.head_timeout = _seconds(settings, "aiopyramid.request_head_timeout", 30)
        self.gc_freeze, self.gc_threshold = collector_settings(settings)
        self.websocket_settings = Settings(
            max_size=self._websocket_max_size(settings),
            max_queue_bytes=limit_setting(
                settings,
                "aiopyramid.websocket.max_queue_bytes",
                int,
                Settings.max_queue_bytes or 0,
                "Write the bytes of received messages a connection may hold for "
                "its view, e.g. 1048576, or 0 for no limit.",
            ),
            ping_interval=_seconds(settings, "aiopyramid.websocket.ping_interval", 20),
            ping_timeout=_seconds(settings, "aiopyramid.websocket.ping_timeout", 20),
            per_message_deflate=_flag(
                settings.get("aiopyramid.websocket.per_message_deflate"), True
            ),
        )

    def _websocket_max_size(self, settings: dict[str, Any]) -> int:
        """The largest websocket message: gunicorn's option if given, else ours.

        gunicorn's own default (16 MiB) is 16 times the ``websockets``
        library's: a client sending messages that inflate to just under it
        would hold that much per message.  So ``aiopyramid.websocket.max_size``
        (default 1 MiB, the library's) decides unless gunicorn's command
        line or configuration file sets ``websocket_max_message_size``.
        """
        option = self.cfg.settings["websocket_max_message_size"]
        if option.get() != option.default:
            return int(option.get())
        return websocket_max_size(settings)

    def log_websocket(
        self,
        environ: dict[str, Any],
        status: str,
        headers: list[tuple[str, str]],
        sent: int,
        seconds: float,
    ) -> None:
        """Write a websocket's line in gunicorn's access log (if it is on).

        ``status`` is ``101`` when the connection is accepted, then its close
        code when it ends, with the connection's duration.
        """
        self.log.access(
            Logged(status, headers, sent), [], environ, timedelta(seconds=seconds)
        )

    def notify(self) -> None:
        """Tell the arbiter we are alive; the first time, fix the listen backlog.

        gunicorn's ASGI worker hands its listening sockets to asyncio's
        ``create_server``, which listens again with asyncio's default backlog
        of 100, not gunicorn's ``backlog`` (2048 by default): a burst of new
        connections then overflows the queue and clients wait a second or
        three to retry.  gunicorn calls this once its servers exist (and then
        every second), so the first call listens with ``backlog`` again.
        ``tests/gunicorn/test_hooks.py`` checks that gunicorn still does.
        """
        super().notify()
        if not self._backlog_restored and getattr(self, "servers", None):
            self._backlog_restored = True
            for listener in self.sockets:
                listener.sock.listen(self.cfg.backlog)

    def app_settings(self) -> dict[str, Any]:
        """The Pyramid application's settings (empty for other WSGI apps)."""
        registry = getattr(getattr(self, "wsgi", None), "registry", None)
        return getattr(registry, "settings", None) or {}

    def setting(self, name: str, default: Any = None) -> Any:
        """Return the Pyramid application's setting ``name`` (or ``default``)."""
        return self.app_settings().get(name, default)

    def _choose_loop(self) -> None:
        """Replace gunicorn's loop by asyncio's when uvloop is not wanted.

        gunicorn creates the loop, and attaches its signal handlers to it,
        before the application is loaded: the application's setting can only
        be honoured by replacing the loop here and attaching the handlers
        again (``init_signals``, a public step of every gunicorn worker),
        before the servers start.  ``self.loop`` is the attribute gunicorn's
        worker serves from.  No public hook of gunicorn's does this; a test
        checks that the replacement serves and that SIGTERM still stops it.
        """
        if self.cfg.asgi_loop != "auto" or not _is_uvloop(self.loop):
            return
        wanted = _flag(self.setting("aiopyramid.uvloop"), self.use_uvloop)
        wanted = _flag(os.environ.get("AIOPYRAMID_UVLOOP"), wanted)
        if not wanted:
            self.loop.close()
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.init_signals()
