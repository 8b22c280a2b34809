"""The response half of the ASGI bridge: ``start_response``, ``write``, sending.

One :class:`Response` per request.  It also sends the bridge's own refusals
(``400``, ``408``, ``413``, ``503``) and replaces a response whose headers
could split it (CR, LF or NUL in a name or value) by a logged ``500``.
:func:`call_app` runs the WSGI application against it, in the request's
greenlet, for both halves of the bridge (HTTP and websocket).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from ._bridge import wait_for
from ._types import (
    BodyType,
    Environ,
    Headers,
    Receive,
    ResponseBody,
    ResponseStart,
    Send,
    StartType,
    WSGIApp,
)

log = logging.getLogger("aiopyramid.asgi")


class Response:
    """``start_response``, ``write`` and body sending for one request.

    Headers go out with the first non-empty chunk (PEP 3333), so an error
    raised before that can still replace them.
    """

    __slots__ = ("_send", "discard", "headers", "sent", "started", "status")

    #: The ASGI message types of the head and of each body chunk.
    START: ClassVar[StartType] = "http.response.start"
    BODY: ClassVar[BodyType] = "http.response.body"

    def __init__(self, send: Send) -> None:
        self._send = send
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

    async def _start(self) -> None:
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
            await self.refuse(500, "Internal Server Error.")
            self.discard = True
            return
        self.started = True
        start: ResponseStart = {
            "type": self.START,
            "status": int(self.status[:3]),
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in self.headers
            ],
        }
        await self._send(start)

    async def send_body(self, data: bytes, more: bool) -> None:
        """Send one chunk of the body (with the headers first, if not yet sent)."""
        if self.discard:
            return
        if not self.started:
            await self._start()
            if self.discard:
                return
        self.sent += len(data)
        body: ResponseBody = {"type": self.BODY, "body": data, "more_body": more}
        await self._send(body)

    def finish(self) -> None:
        """End the body from plain code."""
        wait_for(self.send_body(b"", False), "finishing the response")

    async def refuse(self, status: int, text: str) -> None:
        """Send a whole plain-text response of the bridge's own and close."""
        body = text.encode("utf-8")
        self.status = f"{status} {_REASONS.get(status, 'Error')}"
        self.headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        self.started = True
        self.sent = len(body)
        start: ResponseStart = {
            "type": self.START,
            "status": status,
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in self.headers
            ],
        }
        await self._send(start)
        whole: ResponseBody = {"type": self.BODY, "body": body}
        await self._send(whole)


class Watch:
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


def _sync_iterable(app_iter: Any) -> bool:
    return not (hasattr(app_iter, "__aiter__") and not hasattr(app_iter, "__iter__"))


def call_app(app: WSGIApp, environ: Environ, response: Response) -> Any:
    """Call the application; stream a generated body from here.

    Runs in the request's greenlet.  Lists (Pyramid's usual body) and async
    iterables are handed back for the loop to send without further switches;
    other iterables may run plain code that waits, so they are iterated
    here, and ``None`` is returned.
    """
    app_iter = app(environ, response.start_response)
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


async def stream_async(app_iter: Any, response: Response) -> None:
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


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
