"""What every response of aiopyramid's servers shares, whatever carries it.

:class:`WSGIResponse` is the WSGI side of one response: ``start_response``,
``write``, and the check of the head before it goes out (a header with CR,
LF or NUL could split the response: it is replaced by a logged ``500``).
The ASGI bridge's :class:`~aiopyramid._asgi_response.Response` and the
gunicorn worker's direct path (:mod:`aiopyramid.gunicorn._response`) send
the bytes each their own way.  :func:`call_app` runs the application
against either, in the request's greenlet; :func:`stream_async` sends an
async iterable body from the loop.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import IO, Any

from ._bridge import wait_for
from ._types import Environ, Headers, WSGIApp

__all__ = [
    "REASONS",
    "RETRY_AFTER",
    "FileWrapper",
    "WSGIResponse",
    "call_app",
    "stream_async",
]

log = logging.getLogger("aiopyramid.asgi")

#: Reason phrases of the answers aiopyramid's servers make themselves.
REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

#: Seconds a client refused with ``503`` (too many requests at once) is asked
#: to wait before it tries again (``Retry-After``): the slots it waits for
#: free up as requests end, which is a matter of moments.
RETRY_AFTER = 1


class WSGIResponse:
    """``start_response`` and ``write`` for one request; subclasses send.

    Headers go out with the first body bytes (PEP 3333), so an error raised
    before them can still replace them.  A subclass provides
    :meth:`send_body` (a coroutine: the chunk, and whether more follow) and
    calls :meth:`head_is_safe` before it sends the head.
    """

    __slots__ = ("discard", "headers", "sent", "started", "status")

    send_body: Callable[[bytes, bool], Awaitable[None]]

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: Headers = []
        self.started = False
        self.sent = 0
        #: Whether nothing more is to be sent (the response was replaced).
        self.discard = False

    def start_response(
        self, status: str, headers: Headers, exc_info: Any = None
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

    def finish(self) -> None:
        """End the body from plain code."""
        wait_for(self.send_body(b"", False), "finishing the response")

    def _refusal(self, status: int, text: str) -> bytes:
        """Become a plain-text answer of the server's own; return its body.

        The subclass sends it as any response (``Connection: close``: the
        connection ends after it).
        """
        body = text.encode("utf-8")
        self.status = f"{status} {REASONS.get(status, 'Error')}"
        self.headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        if status == 503:  # RFC 9110 section 10.2.3: when to come back
            self.headers.append(("Retry-After", str(RETRY_AFTER)))
        return body

    def head_is_safe(self) -> bool:
        """Whether the head may go out; ``False`` (logged) if a header could split it.

        Raises :class:`RuntimeError` if the application never called
        ``start_response``.
        """
        if self.status is None:
            raise RuntimeError(
                "The WSGI application returned a body without calling "
                "start_response(); call it before returning or writing."
            )
        text = "".join(itertools.chain.from_iterable(self.headers))
        if "\r" in text or "\n" in text or "\0" in text:
            # A header with a line break would let the value write headers
            # (or a whole response) of its own: never sent.  Servers refuse
            # it each their own way (uvicorn's send raises, which left the
            # client with no answer at all): a 500 everywhere instead.
            log.error(
                "Response %r has a header containing CR, LF or NUL: answering "
                "500 instead. Headers: %r",
                self.status,
                self.headers,
            )
            return False
        return True


class FileWrapper:
    """``wsgi.file_wrapper`` for servers that send a file themselves (PEP 3333).

    Given by the RSGI adapter, which hands a whole file that Pyramid's
    ``FileResponse`` wraps to granian's ``response_file``: the file's bytes
    then never pass through Python.  Iterated like any body where that is
    not possible (a file with no path, or not read from its start).
    """

    __slots__ = ("block_size", "filelike")

    def __init__(self, filelike: IO[bytes], block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def path(self) -> str | None:
        """The path of a regular file read from its start; else ``None``."""
        name = getattr(self.filelike, "name", None)
        if not isinstance(name, str) or not os.path.isfile(name):
            return None
        try:
            at_start = self.filelike.tell() == 0
        except (AttributeError, OSError):
            return None
        return name if at_start else None

    def __iter__(self) -> Iterator[bytes]:
        read, size = self.filelike.read, self.block_size
        while chunk := read(size):
            yield chunk

    def close(self) -> None:
        """Close the file (PEP 3333: the server calls ``close``)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def _sync_iterable(app_iter: Any) -> bool:
    return not (hasattr(app_iter, "__aiter__") and not hasattr(app_iter, "__iter__"))


def call_app(app: WSGIApp, environ: Environ, response: WSGIResponse) -> Any:
    """Call the application; stream a generated body from here.

    Runs in the request's greenlet.  Lists (Pyramid's usual body), async
    iterables and :class:`FileWrapper` files are handed back for the loop to
    send without further switches; other iterables may run plain code that
    waits, so they are iterated here, and ``None`` is returned.
    """
    app_iter = app(environ, response.start_response)
    if (
        type(app_iter) is list
        or type(app_iter) is FileWrapper
        or not _sync_iterable(app_iter)
    ):
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


async def stream_async(app_iter: Any, response: WSGIResponse) -> None:
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
