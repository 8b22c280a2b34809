"""Serve a Pyramid (or any WSGI) application from granian's RSGI interface.

:func:`make_rsgi_app` wraps the WSGI application in an :class:`RSGIApp`,
which granian serves natively::

    # myapp/rsgi.py
    from aiopyramid.rsgi import make_rsgi_app
    application = make_rsgi_app(main({}, **settings))

    $ granian --interface rsgi myapp.rsgi:application

RSGI hands each request over as a scope object and a protocol with an
awaitable body and one-call responses, with no message dictionaries in
between: the cheapest way to serve a Pyramid application from asyncio.
granian runs each request as an asyncio task on its loop; the application
runs in a child greenlet of that task, as under the ASGI bridge, so
coroutine views run on granian's loop with no thread hop, and plain views
on aiopyramid's pool (granian allows a single blocking thread for RSGI, so
its own threads are no pool for them).

Everything the ASGI bridge does over HTTP, this does too, with the same
settings and the bridge's own code (:mod:`aiopyramid._rsgi_http`): the head
limits and the ``Host`` rules (``400``), the body limit and stall timeout
(``413``, ``408``), the request budget (``503`` with ``Retry-After``), a
logged ``500`` for a failing application, streamed bodies under the send
deadline, ``wsgi.file_wrapper`` sent by granian itself, a request cancelled
when its client leaves, one access line per request.  Websockets are
refused for now (``403``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ._access_log import line_environ
from ._environ import Limits
from ._rsgi_http import serve_http
from ._types import AccessLogger, WSGIApp
from ._watchdog import ensure_watched
from .asgi import ASGIBridge, make_asgi_app

__all__ = ["RSGIApp", "make_rsgi_app"]

log = logging.getLogger("aiopyramid.rsgi")


class RSGIApp:
    """An RSGI application serving a WSGI application from granian's loop.

    Build it with :func:`make_rsgi_app`.  ``bridge`` holds the settings and
    the counters (requests being served, the send deadline's senders) that
    the ASGI bridge would use: the two serve alike.  ``root_path`` is where
    the application is mounted (``SCRIPT_NAME``), since RSGI has no word for
    it.
    """

    def __init__(self, bridge: ASGIBridge, root_path: str = "") -> None:
        #: The settings and counters shared with the ASGI bridge.
        self.bridge = bridge
        #: ``SCRIPT_NAME``: taken off the front of each path that has it.
        self.root_path = root_path.rstrip("/")
        self._refused_websockets = False

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        """Serve one RSGI scope: an HTTP request or a websocket."""
        # The one place that tells the two kinds apart.
        if scope.proto == "http":
            await serve_http(self.bridge, self.root_path, scope, protocol)
        else:
            self._websocket(scope, protocol)

    def _websocket(self, scope: Any, protocol: Any) -> None:
        """Refuse a websocket handshake: RSGI websockets are not served yet."""
        if not self._refused_websockets:
            self._refused_websockets = True
            log.warning(
                "Websockets are not served over RSGI yet: the handshake for "
                "%s was refused with 403. Serve websocket views with "
                "make_asgi_app (granian --interface asgi) or the gunicorn "
                "worker.",
                scope.path,
            )
        protocol.close(403)
        logger = self.bridge.websocket_logger
        if logger is not None:
            client = scope.client.rpartition(":")[0] if scope.client else None
            environ = line_environ("GET", scope.path, scope.query_string, "1.1", client)
            logger(environ, "403 Forbidden", [], 0, 0.0)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's worker starts ``loop``: watch it, as its settings say."""
        ensure_watched(self.bridge.registry, loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's worker has stopped serving on ``loop``: release its resources.

        The broadcast's connections on this loop are closed, and the plain
        views' pools are shut down (the loop's default executor, and the
        pool of ``aiopyramid.executor.max_workers``).
        """
        registry = self.bridge.registry
        if registry is not None:
            from .broadcast import IBroadcast
            from .config import IExecutor

            broadcast = registry.queryUtility(IBroadcast)
            if broadcast is not None:
                loop.run_until_complete(broadcast.aclose())
            executor = registry.queryUtility(IExecutor)
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        loop.run_until_complete(loop.shutdown_default_executor())
        log.info(
            "granian stopped serving on its loop: broadcast connections "
            "closed, plain-view pools shut down"
        )


def make_rsgi_app(
    wsgi_app: WSGIApp,
    *,
    max_body_size: int | None = None,
    limits: Limits | None = None,
    access_logger: AccessLogger | None = None,
    multiprocess: bool = True,
    body_timeout: float | None = None,
    header_map: str | None = None,
    max_concurrency: int | None = None,
    websocket_logger: AccessLogger | None = None,
    send_timeout: float | None = None,
    max_websockets: int | None = None,
    root_path: str | None = None,
) -> RSGIApp:
    """Return an RSGI application serving ``wsgi_app`` (``--interface rsgi``).

    Takes the options of :func:`aiopyramid.asgi.make_asgi_app`, which say
    the same here, and read the same settings when not given; and
    ``root_path``, the path the application is mounted at (``SCRIPT_NAME``;
    the ``SCRIPT_NAME`` environment variable unless given, as gunicorn's
    workers do).  A request whose path starts with it has it taken off
    ``PATH_INFO``.
    """
    bridge = make_asgi_app(
        wsgi_app,
        max_body_size=max_body_size,
        limits=limits,
        access_logger=access_logger,
        multiprocess=multiprocess,
        body_timeout=body_timeout,
        header_map=header_map,
        max_concurrency=max_concurrency,
        websocket_logger=websocket_logger,
        send_timeout=send_timeout,
        max_websockets=max_websockets,
    )
    if root_path is None:
        root_path = os.environ.get("SCRIPT_NAME", "")
    return RSGIApp(bridge, root_path)
