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
from ._greenlets import run_in_child_greenlet
from ._response import call_app, stream_async
from ._sending import READY, Senders
from ._types import AccessLogger, Environ, Receive, Scope, Send, WSGIApp
from ._watchdog import ensure_watched
from ._wsgi_input import asgi_chunks, has_body, read_input

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
        if not has_body(environ):
            environ["wsgi.input"] = io.BytesIO()
        elif not await read_input(
            environ,
            asgi_chunks(receive),
            response.refuse,
            self.max_body_size,
            self.body_timeout,
        ):
            return environ  # refused, or the client left before sending it
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
            # Answered 500 (unless the client is gone); re-raised once the
            # response has started, too late for a 500: the server cuts it off.
            if not await response.answer_failure(environ, error, log):
                raise
        except asyncio.CancelledError:
            # Re-raised unless aiopyramid cancelled the request: its client went
            # away, or stopped reading, and there is nobody to answer.
            if not response.withdraw_cancel(state.disconnected):
                raise
        finally:
            state.stop()
            environ["wsgi.input"].close()
        return environ
