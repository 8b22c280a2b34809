"""The response half of the worker's direct HTTP/1 path: the response's bytes.

:class:`DirectResponse` is the WSGI side every aiopyramid response shares
(:class:`aiopyramid._response.WSGIResponse`) over a gunicorn connection: it
frames the head and the body itself, with gunicorn's ``Server`` and cached
``Date`` headers, and writes through the connection's protocol, a piece at
a time under the send deadline.
"""

from __future__ import annotations

import contextlib
from typing import Any

from gunicorn.asgi import protocol as gunicorn_protocol

from .._response import WSGIResponse
from .._sending import PIECE, pieces

__all__ = ["DirectResponse"]

#: Bodies up to this size are copied into one write with their framing;
#: larger pieces are written as they are.
_SMALL = 16384
#: The end of a chunked body after a last chunk.
_LAST = b"\r\n0\r\n\r\n"


class DirectResponse(WSGIResponse):
    """The bytes of one response on a gunicorn connection, framed as gunicorn would.

    The head waits for the first body bytes, and a small response goes out
    in one ``write`` with its head.  Content-Length is honoured (extra bytes
    are not sent; missing ones close the connection), a body without one is
    chunked (HTTP/1.1) or ends with the connection (HTTP/1.0), and HEAD,
    ``204``, ``304`` and ``1xx`` answers carry none.
    """

    __slots__ = ("chunked", "close", "length", "omits_body", "protocol", "request")

    def __init__(self, protocol: Any, request: Any) -> None:
        super().__init__()
        self.protocol = protocol
        self.request = request
        #: The declared Content-Length (``None``: none, or chunked).
        self.length: int | None = None
        self.chunked = False
        self.omits_body = False
        #: Whether the connection ends after this response.
        self.close = False

    async def send_body(self, data: bytes, more: bool) -> None:
        """Send a chunk of the body, waiting while the client is slow to read.

        A large chunk goes in pieces of :data:`~aiopyramid._sending.PIECE`
        bytes, each once the transport is below its limit again: a client
        that stops reading holds one piece beyond that limit, not the
        view's whole chunk.
        """
        if len(data) <= PIECE:
            self.put(data, more)
            await self._writable()
            return
        last = len(data) - PIECE
        # Bytes cannot change: the pieces are views of the chunk, which the
        # transport holds (uvloop's without a copy) until the kernel has it.
        whole = memoryview(data) if type(data) is bytes else data
        for index, piece in enumerate(pieces(whole, PIECE)):  # type: ignore[arg-type]
            self.put(piece, more or index * PIECE < last)
            await self._writable()

    async def _writable(self) -> None:
        """Wait while the client is not reading, without holding a request slot."""
        protocol = self.protocol
        flow = protocol._flow_control
        if flow is None or not flow.write_paused:
            return
        # Waiting for a client is no work of the application's: other
        # requests may have the slot meanwhile (aiopyramid._sending).
        bridge = protocol.worker.asgi
        bridge.active -= 1
        try:
            await protocol.drain()  # aborted past aiopyramid.send_timeout
        finally:
            bridge.active += 1

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
        if size > _SMALL:  # a piece: written as it is, framing around it
            parts = [head] if head else []
            if self.chunked:
                parts += [b"%x\r\n" % size, data, b"\r\n" if more else _LAST]
            else:
                parts.append(data)
            self._write_parts(parts)
            return
        if self.chunked:
            if size:
                frame = b"%x\r\n%b\r\n" % (size, data)
                data = frame + b"0\r\n\r\n" if not more else frame
            elif not more:
                data = b"0\r\n\r\n"
        if head or data:
            self.protocol._safe_write(head + data if head else data)

    def _write_parts(self, parts: list[Any]) -> None:
        """Write ``parts`` in one go (uvloop: one ``writev``, no copy)."""
        # A client gone says so through connection_lost, which ends the
        # request; the write itself fails quietly (as gunicorn's _safe_write).
        with contextlib.suppress(OSError, RuntimeError, AttributeError):
            self.protocol.transport.writelines(parts)

    def _head(self) -> bytes:
        """The status line and headers, as gunicorn's own worker frames them."""
        if not self.head_is_safe():
            self.refuse(500, "Internal Server Error.")
            self.discard = True
            return b""
        assert self.status is not None  # checked by head_is_safe
        request = self.request
        code = int(self.status[:3])
        self.omits_body = (
            request.method == "HEAD" or code in (204, 304) or 100 <= code < 200
        )
        major, minor = request.version
        lines = [f"HTTP/{major}.{minor} {self.status}\r\n"]
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
            lines.append(f"{name}: {value}\r\n")
        if self.chunked or self.omits_body:
            self.length = None  # nothing to count: chunked, or no body at all
        elif not framed:
            if request.version >= (1, 1):
                self.chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
            else:  # HTTP/1.0: the end of the connection ends the body
                self.close = True
        self.close = self.close or self.protocol._will_close(request, False)
        head = "".join(lines).encode("latin-1")
        if not extra or not _has(self.headers, "server"):
            head += gunicorn_protocol._CACHED_SERVER_HEADER
        if not extra or not _has(self.headers, "date"):
            head += gunicorn_protocol._get_cached_date_header()
        if self.close and (not extra or not _has(self.headers, "connection")):
            head += b"Connection: close\r\n"
        self.started = True
        return head + b"\r\n"

    def refuse(self, status: int, text: str) -> None:
        """Send a whole plain-text response of our own; the connection closes."""
        body = self._refusal(status, text)
        self.close = True
        self.protocol._linger_on_close = True  # let the client read this
        self.put(body, False)

    @property
    def complete(self) -> bool:
        """Whether every byte the response announced was sent."""
        return self.length is None or self.sent >= self.length


def _has(headers: list[tuple[str, str]], name: str) -> bool:
    return any(key.lower() == name for key, _ in headers)
