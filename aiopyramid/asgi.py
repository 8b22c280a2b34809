"""Serve a Pyramid (or any WSGI) application from an ASGI server.

:func:`make_asgi_app` wraps the WSGI application in an :class:`ASGIBridge`, an
ASGI 3 application that uvicorn, hypercorn, granian (``--interface asgi``) and
:class:`~aiopyramid.gunicorn.worker.AsyncGunicornWorker` serve directly::

    from aiopyramid.asgi import make_asgi_app
    application = make_asgi_app(config.make_wsgi_app())

Each request runs the WSGI application in a child greenlet of the event loop
(:func:`aiopyramid._bridge.run_in_child_greenlet`: the server already gave
the request a task of its own, whose context the greenlet shares), so
coroutine views run on the server's own loop with no thread hop.  The
bridge owns both bodies: the request's is read before the application runs
(spooled to a temporary file past 1 MiB), so that ``request.body`` works even
in a coroutine view, which may not wait; the response's is sent chunk by
chunk as the application produces it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Any

from pyramid.settings import asbool

from ._access_log import log_access, log_environ
from ._asgi_response import Response, Watch, stream_async
from ._bridge import run_in_child_greenlet, wait_for
from ._environ import HEADER_MAPS, BadRequest, Limits, build_environ
from ._failures import report_failure
from ._settings import limit_setting
from ._startup import check_included
from ._types import AccessLogger, Environ, Receive, Scope, Send, WSGIApp
from ._wsgi_input import BodyTimeout, BodyTooLarge, read_body
from .websocket._asgi import WEBSOCKET_KEY, ASGIWebsocket

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "ASGIBridge",
    "AccessLogger",
    "Limits",
    "log_access",
    "make_asgi_app",
]

log = logging.getLogger("aiopyramid.asgi")

#: Seconds after which a request still running starts watching for its
#: client's disconnection (and is cancelled when it comes).
WATCH_AFTER = 0.25


#: Largest request body accepted when nothing says otherwise: 32 MiB.  The
#: bridge reads a whole body before the application runs (to a temporary file
#: past 1 MiB), even for a URL that does not exist, so without a limit one
#: client could fill the disk.  32 MiB takes form posts and ordinary browser
#: uploads (photos, documents); applications taking larger files set
#: ``aiopyramid.max_body_size`` (``0``: no limit).
DEFAULT_MAX_BODY_SIZE = 32 * 2**20

#: Seconds a client may pause while sending a body before it is answered
#: ``408`` and its connection closed (gunicorn's default ``timeout``).
DEFAULT_BODY_TIMEOUT = 30.0

#: What the errors of the body settings advise.
OFF = "0 turns the limit off."


def _sync_iterable(app_iter: Any) -> bool:
    return not (hasattr(app_iter, "__aiter__") and not hasattr(app_iter, "__iter__"))


class ASGIBridge:
    """An ASGI 3 application serving a WSGI application from the server's loop.

    Build it with :func:`make_asgi_app`.  ``http`` requests run the WSGI
    application in a child greenlet; ``websocket`` requests do too, as a
    ``GET`` with their upgrade headers, with the connection in the environ
    for :class:`~aiopyramid.websocket.config.WebsocketMapper`; ``lifespan``
    events are acknowledged.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_body_size: int | None = None,
        limits: Limits | None = None,
        access_logger: AccessLogger | None = None,
        multiprocess: bool = True,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
        header_map: str = "drop",
        max_concurrency: int | None = None,
        websocket_logger: AccessLogger | None = None,
    ) -> None:
        if header_map not in HEADER_MAPS:
            raise ValueError(
                f"header_map must be one of {', '.join(HEADER_MAPS)}, not "
                f"{header_map!r}"
            )
        self.app = app
        self.max_body_size = max_body_size
        self.limits = limits
        self.access_logger = access_logger
        #: Called when a websocket is accepted (status ``101``) and when it
        #: ends (its close code as the status, the connection's duration).
        self.websocket_logger = websocket_logger
        #: ``wsgi.multiprocess``: whether other processes serve the same app.
        self.multiprocess = multiprocess
        self.body_timeout = body_timeout
        self.header_map = header_map
        #: Most requests and websockets served at once; more get ``503``.
        self.max_concurrency = max_concurrency
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"aiopyramid.asgi cannot serve {kind!r} scopes")

    # -- plain code, in the request's greenlet ----------------------------
    def _call_app(self, environ: Environ, response: Response) -> Any:
        """Call the application; stream a generated body from here.

        Lists (Pyramid's usual body) and async iterables are handed back for
        the loop to send without further switches; other iterables may run
        plain code that waits, so they are iterated here.
        """
        app_iter = self.app(environ, response.start_response)
        if type(app_iter) is list or not _sync_iterable(app_iter):
            return app_iter
        try:
            for chunk in app_iter:
                if chunk:
                    # Each chunk waits until the server has taken it: a slow
                    # client slows the generator down instead of memory
                    # filling up.
                    wait_for(response.send_body(chunk, True), "sending the response")
            response.finish()
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        return None

    # -- on the loop -----------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        logger = self.access_logger
        started_at = time.monotonic() if logger is not None else 0.0
        response = Response(send)
        environ: Environ | None = None
        ended = "499 Client Closed Request"  # unless something else is known
        self.active += 1
        try:
            environ = await self._serve_http(scope, receive, response)
        except Exception:
            ended = "500 Internal Server Error"
            raise
        finally:
            self.active -= 1
            if logger is not None:
                # Every request gets its line: refusals, errors and requests
                # whose client left included.
                logger(
                    environ if environ is not None else log_environ(scope),
                    (response.status if response.started else None) or ended,
                    response.headers if response.started else [],
                    response.sent,
                    time.monotonic() - started_at,
                )

    async def _serve_http(
        self, scope: Scope, receive: Receive, response: Response
    ) -> Environ | None:
        """Serve one request; return its environ (``None`` if refused early)."""
        limit = self.max_concurrency
        if limit is not None and self.active > limit:
            await response.refuse(503, "Service Unavailable: too many requests.")
            return None
        try:
            environ = build_environ(scope, None, self.limits, self.header_map)
        except BadRequest as error:
            await response.refuse(400, f"Bad Request: {error}.")
            return None
        environ["wsgi.multiprocess"] = self.multiprocess
        if self._has_body(scope, environ):
            declared = environ.get("CONTENT_LENGTH", "")
            limit = self.max_body_size
            if limit is not None and declared.isdigit() and int(declared) > limit:
                # Refused before the body is sent: a client that announced
                # it would send too much is not made to send it first.
                await response.refuse(413, "Request Entity Too Large.")
                return environ
            try:
                body = await read_body(
                    receive, self.max_body_size, timeout=self.body_timeout
                )
            except BodyTooLarge:
                await response.refuse(413, "Request Entity Too Large.")
                return environ
            except BodyTimeout:
                await response.refuse(408, "Request Timeout: the body stalled.")
                return environ
            if body is None:  # the client left before sending its body
                return environ
            environ["wsgi.input"] = body[0]
            environ["CONTENT_LENGTH"] = str(body[1])
        else:
            environ["wsgi.input"] = io.BytesIO()
        # Read already and rewound: WebOb need not copy it again to seek.
        environ["webob.is_body_seekable"] = True
        task = asyncio.current_task()
        state = Watch(task, receive)
        # The watcher starts only if the request is still running after
        # WATCH_AFTER seconds: short requests (nearly all) never pay for a
        # task that waits on receive().
        state.timer = asyncio.get_running_loop().call_later(WATCH_AFTER, state.arm)
        try:
            result = await run_in_child_greenlet(self._call_app, environ, response)
            if type(result) is list:
                last = len(result) - 1
                for index, chunk in enumerate(result):
                    if index == last:
                        await response.send_body(chunk, False)
                    elif chunk:
                        await response.send_body(chunk, True)
                if not result:
                    await response.send_body(b"", False)
            elif result is not None:
                await stream_async(result, response)
        except Exception as error:
            report_failure(environ, error)
            if response.started:  # too late for a 500: the server cuts it off
                raise
            await response.refuse(500, "Internal Server Error.")
        except asyncio.CancelledError:
            if not state.disconnected or task is None:
                raise
            # Our own cancellation of a request whose client went away: it
            # has unwound; there is nobody to answer.
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:  # Python 3.11+
                uncancel()
        finally:
            state.stop()
            environ["wsgi.input"].close()
        return environ

    def _has_body(self, scope: Scope, environ: Environ) -> bool:
        length = environ.get("CONTENT_LENGTH")
        if length is not None:
            return bool(length != "0")
        if "HTTP_TRANSFER_ENCODING" in environ:
            return True
        # HTTP/2 and 3 may send a body with neither header.
        return scope.get("http_version", "1.1") not in ("1.0", "1.1") and (
            environ["REQUEST_METHOD"] not in ("GET", "HEAD", "OPTIONS")
        )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        ws = ASGIWebsocket(scope, receive, send)
        denial = "websocket.http.response" in scope.get("extensions", {})
        response = Response(send, "websocket.http.response", ws)
        response.discard = not denial
        limit = self.max_concurrency
        try:
            if limit is not None and self.active >= limit:
                raise BadRequest("too many connections")
            environ = build_environ(scope, io.BytesIO(), self.limits, self.header_map)
        except BadRequest:
            # Closing before accepting refuses the handshake (403).
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        environ["wsgi.multiprocess"] = self.multiprocess
        environ[WEBSOCKET_KEY] = ws
        logger = self.websocket_logger
        started_at = time.monotonic()
        if logger is not None:
            ws.on_accept = lambda: logger(
                environ, "101", [], 0, time.monotonic() - started_at
            )
        self.active += 1
        try:
            result = await run_in_child_greenlet(self._call_app, environ, response)
        finally:
            self.active -= 1
        if ws.accepted:
            await ws.close()
            if logger is not None:
                code = str(ws.close_code)
                logger(environ, code, [], 0, time.monotonic() - started_at)
            return
        if logger is not None:
            logger(environ, response.status or "403", [], 0, 0.0)
        if not denial:
            # The server cannot send our refusal: close before accepting,
            # which every ASGI server answers with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        if type(result) is list:
            await response.send_body(b"".join(result), False)
        elif result is not None:
            await stream_async(result, response)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            event = message["type"].rpartition(".")[2]
            await send({"type": f"lifespan.{event}.complete"})
            if event == "shutdown":
                return


def make_asgi_app(
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
) -> ASGIBridge:
    """Return an ASGI application that serves ``wsgi_app``.

    ``max_body_size`` is the largest request body accepted, in bytes
    (:data:`DEFAULT_MAX_BODY_SIZE` unless given; ``0``: no limit); a larger
    one is answered ``413``.  ``body_timeout`` is how long, in seconds, a
    body may stall before ``408`` (:data:`DEFAULT_BODY_TIMEOUT`; ``0``: for
    ever).  ``limits`` bounds the request head (:class:`Limits`).
    ``header_map`` says what becomes of header names with ``_``: ``"drop"``
    (default), ``"refuse"`` (400) or ``"dangerous"`` (kept).
    ``max_concurrency`` is the most requests served at once, more get ``503``.
    ``access_logger`` is called after every response, errors, refusals and
    abandoned requests included, with what an access log line needs
    (:func:`log_access` writes one); ``websocket_logger`` (the access logger
    unless given) gets two such calls for each websocket: ``101`` when it is
    accepted, and its close code with the connection's duration when it
    ends.  ``multiprocess`` is
    ``wsgi.multiprocess``: true unless the server is known to run the
    application in one process only (add-ons such as pyramid_debugtoolbar
    turn themselves off when it is true).

    Arguments not given come from a Pyramid application's settings:
    ``aiopyramid.max_body_size``, ``aiopyramid.body_timeout``,
    ``aiopyramid.header_map`` and ``aiopyramid.access_log`` (true:
    :func:`log_access`).
    """
    settings = getattr(getattr(wsgi_app, "registry", None), "settings", None) or {}
    if max_body_size is None:
        max_body_size = limit_setting(
            settings, "aiopyramid.max_body_size", int, DEFAULT_MAX_BODY_SIZE, OFF
        )
    if body_timeout is None:
        body_timeout = limit_setting(
            settings, "aiopyramid.body_timeout", float, DEFAULT_BODY_TIMEOUT, OFF
        )
    if header_map is None:
        header_map = settings.get("aiopyramid.header_map") or "drop"
    if access_logger is None and asbool(settings.get("aiopyramid.access_log")):
        access_logger = log_access
    check_included(wsgi_app)
    return ASGIBridge(
        wsgi_app,
        max_body_size=max_body_size or None,
        limits=limits,
        access_logger=access_logger,
        multiprocess=multiprocess,
        body_timeout=body_timeout or None,
        header_map=header_map,
        max_concurrency=max_concurrency or None,
        websocket_logger=websocket_logger or access_logger,
    )
