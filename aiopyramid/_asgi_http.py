"""The HTTP half of the ASGI bridge: one ``http`` scope, one request.

:class:`HTTPHalf` is a base of :class:`aiopyramid.asgi.ASGIBridge`, which
sets the attributes declared here.  A request is refused early when the
bridge is full (``503``), its head is bad (``400``) or its body too large
(``413``) or stalled (``408``); otherwise its body is read whole (spooled to
a temporary file past 1 MiB, so that ``request.body`` works even in a
coroutine view, which may not wait), the application runs in a child
greenlet of the request's task, and the response goes out chunk by chunk as
the application produces it.  A request still running after
:data:`~aiopyramid._asgi_response.WATCH_AFTER` seconds is cancelled if its
client disconnects; one whose client takes none of its response for the
send deadline is cancelled too (:mod:`aiopyramid._sending`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Any

from ._access_log import log_environ
from ._asgi_response import Response, Watch
from ._environ import BadRequest, Limits, environ_of_scope
from ._failures import report_failure
from ._greenlets import run_in_child_greenlet
from ._response import call_app, stream_async
from ._sending import READY, Senders
from ._types import AccessLogger, Environ, Receive, Scope, Send, WSGIApp
from ._watchdog import ensure_watched
from ._wsgi_input import BodyTimeout, BodyTooLarge, read_body

log = logging.getLogger("aiopyramid.asgi")


class HTTPHalf:
    """Serves the ``http`` scopes of :class:`~aiopyramid.asgi.ASGIBridge`."""

    # What this half reads from the bridge (set by ASGIBridge.__init__).
    app: WSGIApp
    registry: Any
    max_body_size: int | None
    body_timeout: float | None
    limits: Limits | None
    header_map: str
    multiprocess: bool
    max_concurrency: int | None
    access_logger: AccessLogger | None
    #: The responses waiting for their clients, under the send deadline.
    senders: Senders
    #: Requests and websockets being served now (shared with the other half).
    active: int

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        logger = self.access_logger
        started_at = time.monotonic() if logger is not None else 0.0
        response = Response(
            send,
            self.senders,
            asyncio.current_task(),
            http2=scope.get("http_version") == "2",
            ready=(scope.get("extensions") or {}).get(READY),
        )
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
            environ = environ_of_scope(scope, None, self.limits, self.header_map)
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
        # A server without lifespan: its loop is watched from the first
        # request; on a loop already known, this is a set lookup.
        ensure_watched(self.registry, task.get_loop() if task else None)
        state = Watch(task, receive)
        state.start()
        try:
            result = await run_in_child_greenlet(call_app, self.app, environ, response)
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
            lost, response.lost = response.lost, None  # (a cycle through it)
            if error is lost:
                # The server could not send: its client is gone, and the
                # server knows (it raised).  Nothing failed here.
                log.debug("Response not sent: %s: %s", type(error).__name__, error)
                return environ
            report_failure(environ, error)
            if response.started:  # too late for a 500: the server cuts it off
                raise
            await response.refuse(500, "Internal Server Error.")
        except asyncio.CancelledError:
            if not (state.disconnected or response.timed_out) or task is None:
                raise
            # Our own cancellation of a request whose client went away, or
            # stopped reading: it has unwound; there is nobody to answer.
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
