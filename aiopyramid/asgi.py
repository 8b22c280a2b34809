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
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ._bridge import run_in_child_greenlet, wait_for
from ._environ import LimitExceeded, Limits, build_environ
from ._settings import positive_setting
from ._wsgi_input import BodyTooLarge, read_body
from .websocket._asgi import ASGIWebsocket

__all__ = ["ASGIBridge", "AccessLogger", "Limits", "make_asgi_app"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: Called once a response is complete: (environ, status line, response
#: headers, body bytes sent, seconds taken).
AccessLogger = Callable[[dict[str, Any], str, list[tuple[str, str]], int, float], None]

log = logging.getLogger("aiopyramid.asgi")

#: Seconds after which a request still running starts watching for its
#: client's disconnection (and is cancelled when it comes).
WATCH_AFTER = 0.25

#: The environ key under which a websocket request carries its ``ws`` object.
WEBSOCKET_KEY = "aiopyramid.websocket"


class _Response:
    """``start_response``, ``write`` and body sending for one request.

    Headers go out with the first non-empty chunk (PEP 3333), so an error
    raised before that can still replace them.
    """

    __slots__ = (
        "_send",
        "discard",
        "headers",
        "kind",
        "sent",
        "started",
        "status",
        "ws",
    )

    def __init__(
        self, send: Send, kind: str = "http.response", ws: ASGIWebsocket | None = None
    ) -> None:
        self._send = send
        self.kind = kind
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.started = False
        self.sent = 0
        self.discard = False
        self.ws = ws

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        """The WSGI ``start_response`` callable."""
        if exc_info is not None:
            try:
                if self.started:  # too late to change: PEP 3333 says re-raise
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError(
                "start_response() was called a second time without exc_info"
            )
        self.status, self.headers = status, headers
        return self.write

    def write(self, data: bytes) -> None:
        """The WSGI ``write`` callable: send ``data`` now (from plain code)."""
        if data:
            # Waits in the request's greenlet (or executor thread) while the
            # loop hands the chunk to the server.
            wait_for(self.send_body(data, True), "write()")

    async def _start(self) -> None:
        if self.status is None:
            raise RuntimeError(
                "The WSGI application returned a body without calling "
                "start_response(); call it before returning or writing."
            )
        self.started = True
        await self._send(
            {
                "type": self.kind + ".start",
                "status": int(self.status[:3]),
                "headers": [
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in self.headers
                ],
            }
        )

    async def send_body(self, data: bytes, more: bool) -> None:
        """Send one chunk of the body (with the headers first, if not yet sent)."""
        if self.discard or (self.ws is not None and self.ws.accepted):
            return  # a websocket's HTTP response has no one to go to
        if not self.started:
            await self._start()
        self.sent += len(data)
        await self._send({"type": self.kind + ".body", "body": data, "more_body": more})

    def finish(self) -> None:
        """End the body from plain code."""
        wait_for(self.send_body(b"", False), "finishing the response")


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
    ) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.limits = limits
        self.access_logger = access_logger
        #: ``wsgi.multiprocess``: whether other processes serve the same app.
        self.multiprocess = multiprocess

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
    def _call_app(self, environ: dict[str, Any], response: _Response) -> Any:
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
        started_at = time.monotonic() if self.access_logger is not None else 0.0
        try:
            environ = build_environ(scope, None, self.limits)
        except LimitExceeded as error:
            await _simple(send, 400, f"Bad Request: {error}.")
            return
        environ["wsgi.multiprocess"] = self.multiprocess
        if self._has_body(scope, environ):
            declared = environ.get("CONTENT_LENGTH", "")
            limit = self.max_body_size
            if limit is not None and declared.isdigit() and int(declared) > limit:
                # Refused before the body is sent: a client that announced
                # it would send too much is not made to send it first.
                await _simple(send, 413, "Request Entity Too Large.")
                return
            try:
                body = await read_body(receive, self.max_body_size)
            except BodyTooLarge:
                await _simple(send, 413, "Request Entity Too Large.")
                return
            if body is None:  # the client left before sending its body
                return
            environ["wsgi.input"] = body[0]
            environ["CONTENT_LENGTH"] = str(body[1])
        else:
            environ["wsgi.input"] = io.BytesIO()
        # Read already and rewound: WebOb need not copy it again to seek.
        environ["webob.is_body_seekable"] = True
        response = _Response(send)
        task = asyncio.current_task()
        state = _Watch(task, receive)
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
                await _stream_async(result, response)
        except asyncio.CancelledError:
            if not state.disconnected or task is None:
                raise
            # Our own cancellation of a request whose client went away: it
            # has unwound; there is nobody to answer.
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:  # Python 3.11+
                uncancel()
            return
        finally:
            state.stop()
            environ["wsgi.input"].close()
        if self.access_logger is not None:
            self.access_logger(
                environ,
                response.status or "500 Internal Server Error",
                response.headers,
                response.sent,
                time.monotonic() - started_at,
            )

    def _has_body(self, scope: Scope, environ: dict[str, Any]) -> bool:
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
        response = _Response(send, "websocket.http.response", ws)
        response.discard = not denial
        try:
            environ = build_environ(scope, io.BytesIO(), self.limits)
        except LimitExceeded:
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        environ["wsgi.multiprocess"] = self.multiprocess
        environ[WEBSOCKET_KEY] = ws
        result = await run_in_child_greenlet(self._call_app, environ, response)
        if ws.accepted:
            await ws.close()
            return
        if not denial:
            # The server cannot send our refusal: close before accepting,
            # which every ASGI server answers with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        if type(result) is list:
            await response.send_body(b"".join(result), False)
        elif result is not None:
            await _stream_async(result, response)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            event = message["type"].rpartition(".")[2]
            await send({"type": f"lifespan.{event}.complete"})
            if event == "shutdown":
                return


class _Watch:
    """Cancels a request's task when its client disconnects mid-request."""

    __slots__ = ("disconnected", "done", "receive", "task", "timer", "watcher")

    def __init__(self, task: asyncio.Task[Any] | None, receive: Receive) -> None:
        self.task = task
        self.receive = receive
        self.done = False
        self.disconnected = False
        self.watcher: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        """Start watching, unless the request is already done."""
        if not self.done and self.task is not None:
            self.watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        # The body has been read already, so this is the only reader.
        while (await self.receive())["type"] != "http.disconnect":
            pass
        if not self.done and self.task is not None:
            self.disconnected = True
            self.task.cancel()

    def stop(self) -> None:
        """The request is over: stop watching."""
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        if self.watcher is not None:
            self.watcher.cancel()


async def _stream_async(app_iter: Any, response: _Response) -> None:
    """Send an async iterable body from the loop (server-sent events and such)."""
    try:
        async for chunk in app_iter:
            if chunk:
                await response.send_body(chunk, True)
        await response.send_body(b"", False)
    finally:
        aclose = getattr(app_iter, "aclose", None)
        if aclose is not None:
            await aclose()


async def _simple(send: Send, status: int, text: str) -> None:
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def make_asgi_app(
    wsgi_app: WSGIApp,
    *,
    max_body_size: int | None = None,
    limits: Limits | None = None,
    access_logger: AccessLogger | None = None,
    multiprocess: bool = True,
) -> ASGIBridge:
    """Return an ASGI application that serves ``wsgi_app``.

    ``max_body_size`` is the largest request body accepted, in bytes
    (``None``: no limit); a larger one is answered ``413``.  ``limits``
    bounds the request head (:class:`Limits`).  ``access_logger`` is called
    after each response with what an access log line needs.
    ``multiprocess`` is ``wsgi.multiprocess``: true unless the server is
    known to run the application in one process only (add-ons such as
    pyramid_debugtoolbar turn themselves off when it is true).  When
    ``max_body_size`` is not given, the ``aiopyramid.max_body_size`` setting
    of a Pyramid application is used.
    """
    if max_body_size is None:
        settings = getattr(getattr(wsgi_app, "registry", None), "settings", None) or {}
        max_body_size = positive_setting(
            settings,
            "aiopyramid.max_body_size",
            int,
            "Set it to the largest request body to accept, in bytes (e.g. "
            "10485760 for 10 MiB), or leave it out for no limit.",
        )
    return ASGIBridge(
        wsgi_app,
        max_body_size=max_body_size,
        limits=limits,
        access_logger=access_logger,
        multiprocess=multiprocess,
    )
