"""Plain HTTP/1 requests served straight from gunicorn's parser, without ASGI.

gunicorn's parser (``gunicorn_h1c``, or its Python parser) has already read
and checked the request head, applied gunicorn's limits and header policy, and
frames the body.  For a plain HTTP/1 request, :class:`DirectHTTP` then builds
the environ from the parsed request, runs the application in a pooled
greenlet on the connection's own task, and writes the response with one
``write`` for a whole small body: no ASGI scope, no message dictionaries, no
task per request, and no timer.  Websockets, HTTP/2 and the uWSGI protocol
keep going through gunicorn's ASGI code and :class:`aiopyramid.asgi.ASGIBridge`.

Every refusal of the bridge is kept: ``503`` past ``worker_connections``,
``400`` for two ``Host`` headers or a name with ``_`` under
``header_map = refuse``, ``413`` for a body over ``aiopyramid.max_body_size``,
``408`` for a stalled body, a logged ``500`` for a failing view or a header
with CR, LF or NUL; a client that leaves cancels its request.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from gunicorn.asgi import protocol as gunicorn_protocol

from .._access_log import log_environ
from .._asgi_response import stream_async
from .._bridge import run_in_child_greenlet, wait_for
from .._environ import BadRequest, build_environ
from .._failures import report_failure
from .._wsgi_input import BodyTimeout, BodyTooLarge, read_body

__all__ = ["DirectHTTP", "DirectResponse"]

log = logging.getLogger("aiopyramid.asgi")

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class DirectResponse:
    """``start_response``, ``write`` and the response's bytes for one request.

    The head waits for the first body bytes (PEP 3333), so a failure before
    them can still become a ``500``, and a small response goes out in one
    ``write``.  The same interface as the ASGI bridge's response object, so
    the application is called the same way on both paths.
    """

    __slots__ = (
        "chunked",
        "close",
        "discard",
        "headers",
        "length",
        "omits_body",
        "protocol",
        "request",
        "sent",
        "started",
        "status",
    )

    def __init__(self, protocol: Any, request: Any) -> None:
        self.protocol = protocol
        self.request = request
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.started = False
        self.discard = False
        self.sent = 0
        #: The declared Content-Length (``None``: none, or chunked).
        self.length: int | None = None
        self.chunked = False
        self.omits_body = False
        #: Whether the connection ends after this response.
        self.close = False

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
            wait_for(self.send_body(data, True), "write()")

    def finish(self) -> None:
        """End the body from plain code."""
        wait_for(self.send_body(b"", False), "finishing the response")

    async def send_body(self, data: bytes, more: bool) -> None:
        """Send a chunk of the body, waiting while the client is slow to read."""
        self.put(data, more)
        flow = self.protocol._flow_control
        if flow is not None and flow.write_paused:
            await flow.drain()

    def put(self, data: bytes, more: bool) -> None:
        """Hand a chunk of the body (headers first, if not sent) to the socket."""
        if self.discard:
            return
        head = b""
        if not self.started:
            head = self._head()
            if self.discard:
                return
        if self.omits_body:
            data = b""
        elif self.length is not None:
            data = data[: max(self.length - self.sent, 0)]
        size = len(data)
        self.sent += size
        if self.chunked:
            if size:
                frame = b"%x\r\n%b\r\n" % (size, data)
                data = frame + b"0\r\n\r\n" if not more else frame
            elif not more:
                data = b"0\r\n\r\n"
        if head or data:
            self.protocol._safe_write(head + data if head else data)

    def _head(self) -> bytes:
        """The status line and headers, as gunicorn's own worker frames them."""
        if self.status is None:
            raise RuntimeError(
                "The WSGI application returned a body without calling "
                "start_response(); call it before returning or writing."
            )
        text = "".join(itertools.chain.from_iterable(self.headers))
        if "\r" in text or "\n" in text or "\0" in text:
            # A line break would let a header value write headers (or a whole
            # response) of its own: never sent.
            log.error(
                "Response %r has a header containing CR, LF or NUL: answering "
                "500 instead. Headers: %r",
                self.status,
                self.headers,
            )
            self.refuse(500, "Internal Server Error.")
            self.discard = True
            return b""
        request = self.request
        code = int(self.status[:3])
        self.omits_body = (
            request.method == "HEAD" or code in (204, 304) or 100 <= code < 200
        )
        lines = [b"HTTP/%d.%d %s\r\n" % (*request.version, self.status.encode())]
        framed = extra = False
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length":
                if self.omits_body and (code == 204 or code < 200):
                    continue
                framed = True
                if value.isdigit():
                    self.length = int(value)
            elif lower == "transfer-encoding":
                if self.omits_body:
                    continue
                self.chunked = True
            elif lower in ("date", "server", "connection"):
                extra = True
            lines.append(
                b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
            )
        if self.chunked or self.omits_body:
            self.length = None  # nothing to count: chunked, or no body at all
        elif not framed and not self.omits_body:
            if request.version >= (1, 1):
                self.chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:  # HTTP/1.0: the end of the connection ends the body
                self.close = True
        protocol = self.protocol
        self.close = self.close or protocol._will_close(request, False)
        if not extra or not _has(self.headers, "server"):
            lines.append(gunicorn_protocol._CACHED_SERVER_HEADER)
        if not extra or not _has(self.headers, "date"):
            lines.append(gunicorn_protocol._get_cached_date_header())
        if self.close and (not extra or not _has(self.headers, "connection")):
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        self.started = True
        return b"".join(lines)

    def refuse(self, status: int, text: str) -> None:
        """Send a whole plain-text response of our own; the connection closes."""
        body = text.encode("utf-8")
        self.status = f"{status} {_REASONS.get(status, 'Error')}"
        self.headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        self.started = True
        self.close = True
        self.protocol._linger_on_close = True  # let the client read this
        self.sent = len(body)
        version = self.request.version
        self.protocol._safe_write(
            b"HTTP/%d.%d %s\r\n%s%s%s\r\n%s"
            % (
                *version,
                self.status.encode(),
                b"".join(
                    b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in self.headers
                ),
                gunicorn_protocol._CACHED_SERVER_HEADER,
                gunicorn_protocol._get_cached_date_header(),
                body,
            )
        )

    @property
    def complete(self) -> bool:
        """Whether every byte the response announced was sent."""
        return self.length is None or self.sent >= self.length


def _has(headers: list[tuple[str, str]], name: str) -> bool:
    return any(key.lower() == name for key, _ in headers)


class DirectHTTP:
    """The part of the worker's protocol that serves plain HTTP/1 requests.

    Mixed into :class:`aiopyramid.gunicorn._protocol.Protocol` ahead of
    gunicorn's ``ASGIProtocol``, whose connection loop calls
    ``_serve_http_request`` once per request and reads the keep-alive answer
    it returns.
    """

    #: The request being served, while the application runs.
    _serving: DirectResponse | None = None
    #: Whether this connection's task was cancelled because its client left.
    _client_left = False

    async def _serve_http_request(
        self, request: Any, sockname: Any, peername: Any
    ) -> bool:
        worker = self.worker  # type: ignore[attr-defined]
        bridge = worker.asgi
        access = worker.access_log
        started = time.monotonic() if access is not None else 0.0
        response = DirectResponse(self, request)
        scope = self._scope(request, sockname, peername)
        environ: dict[str, Any] | None = None
        bridge.active += 1
        try:
            if self._pre_request is not None:  # type: ignore[attr-defined]
                self._pre_request(worker, request)  # type: ignore[attr-defined]
            environ = build_environ(scope, None, None, bridge.header_map)
            await self._respond(bridge, request, environ, response)
        except BadRequest as error:
            response.refuse(400, f"Bad Request: {error}.")
        except asyncio.CancelledError:
            if not self._client_left:
                raise
            # Our own cancellation of a request whose client went away: it
            # has unwound, and there is nobody to answer.
            response.close = True
            self._client_left = False
            uncancel = getattr(asyncio.current_task(), "uncancel", None)
            if uncancel is not None:  # Python 3.11+
                uncancel()
        except Exception as error:  # a gunicorn hook, or reading the body
            report_failure(environ or log_environ(scope), error)
            if response.started:
                response.close = True
            else:
                response.refuse(500, "Internal Server Error.")
        finally:
            bridge.active -= 1
            self._serving = None
            if environ is None:
                environ = log_environ(scope)
            elif "wsgi.input" in environ:
                environ["wsgi.input"].close()
            if not response.started:  # nothing was answered: the client left
                response.status, response.headers = "499 Client Closed Request", []
            if access is not None:
                access.write(response, request, environ, time.monotonic() - started)
            if self._post_request is not None:  # type: ignore[attr-defined]
                self._post_request(worker, request, environ, response)  # type: ignore[attr-defined]
        return response.started and not response.close and response.complete

    def _scope(self, request: Any, sockname: Any, peername: Any) -> dict[str, Any]:
        """``request`` as an ASGI scope, for the bridge's one environ builder."""
        return {
            "type": "http",
            "http_version": "{}.{}".format(*request.version),
            "method": request.method,
            "scheme": request.scheme,
            "path": request.path,
            "raw_path": request.raw_path,
            "query_string": request.query.encode("latin-1") if request.query else b"",
            "root_path": self._root_path,  # type: ignore[attr-defined]
            "headers": request.headers_bytes,
            "server": sockname if type(sockname) is tuple else None,
            "client": peername if type(peername) is tuple else None,
        }

    async def _respond(
        self,
        bridge: Any,
        request: Any,
        environ: dict[str, Any],
        response: DirectResponse,
    ) -> None:
        limit = bridge.max_concurrency
        if limit is not None and bridge.active > limit:
            response.refuse(503, "Service Unavailable: too many requests.")
            return
        environ["wsgi.multiprocess"] = bridge.multiprocess
        if request.content_length or request.chunked:
            if not await self._read_body(bridge, request, environ, response):
                return
        else:
            environ["wsgi.input"] = io.BytesIO()
        environ["webob.is_body_seekable"] = True
        self._serving = response
        try:
            result = await run_in_child_greenlet(bridge._call_app, environ, response)
            if type(result) is list:
                response.put(b"".join(result), False)
            elif result is not None:
                await stream_async(result, response)
        except Exception as error:
            report_failure(environ, error)
            if response.started:
                response.close = True  # too late for a 500: cut it off
            else:
                response.refuse(500, "Internal Server Error.")

    async def _read_body(
        self,
        bridge: Any,
        request: Any,
        environ: dict[str, Any],
        response: DirectResponse,
    ) -> bool:
        """Read the body into ``wsgi.input``; ``False`` if it was refused instead."""
        limit = bridge.max_body_size
        if limit is not None and request.content_length > limit:
            # Refused before the body is sent: a client that announced it
            # would send too much is not made to send it first.
            environ["wsgi.input"] = io.BytesIO()
            response.refuse(413, "Request Entity Too Large.")
            return False
        try:
            body = await read_body(
                self._body_receiver.receive,  # type: ignore[attr-defined]
                limit,
                timeout=bridge.body_timeout,
            )
        except BodyTooLarge:
            environ["wsgi.input"] = io.BytesIO()
            response.refuse(413, "Request Entity Too Large.")
            return False
        except BodyTimeout:
            environ["wsgi.input"] = io.BytesIO()
            response.refuse(408, "Request Timeout: the body stalled.")
            return False
        if body is None:  # the client left before sending its body
            environ["wsgi.input"] = io.BytesIO()
            response.close = True
            return False
        environ["wsgi.input"], size = body
        environ["CONTENT_LENGTH"] = str(size)
        return True

    def _client_gone(self) -> None:
        """The client left mid-request: cancel the request, as the bridge does."""
        task = self._task  # type: ignore[attr-defined]
        if self._serving is not None and task is not None and not task.done():
            self._client_left = True
            task.cancel()
