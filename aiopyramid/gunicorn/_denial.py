"""The HTTP response refusing a websocket handshake, under the worker.

ASGI's ``websocket.http.response`` extension lets an application refuse a
handshake with a whole response of its own (status, headers, body) instead
of a bare ``403``; the bridge sends a view's refusal (``raise HTTPGone()``,
a failed permission) that way when the server offers it, as uvicorn and
hypercorn do.  :class:`Denial` turns those messages into the bytes of one
HTTP/1.1 response for :class:`~aiopyramid.gunicorn._websocket.Websocket`.
The connection closes after it, which ends a body sent without a length.
"""

from __future__ import annotations

import http
import re
from typing import Any

__all__ = ["DENIAL_MESSAGES", "EXTENSION", "Denial"]

#: The scope's ``extensions`` entry that offers the extension.
EXTENSION = "websocket.http.response"
START = "websocket.http.response.start"
BODY = "websocket.http.response.body"
#: The ASGI messages of a denial.
DENIAL_MESSAGES = (START, BODY)
_BAD_HEADER = re.compile(rb"[\r\n\0]")


def _text(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1")


class Denial:
    """One refusal's response, from its ``websocket.http.response.*`` messages."""

    __slots__ = ("done", "head")

    def __init__(self) -> None:
        #: The status line and headers, until the first body bytes take them.
        self.head: bytes | None = None
        #: Whether the body's last message came.
        self.done = False

    def take(self, message: dict[str, Any]) -> bytes:
        """The bytes ``message`` adds to the response (the head waits for a body).

        Raises :class:`RuntimeError` for messages out of order and
        :class:`ValueError` for a header that could split the response.
        """
        if self.done:
            raise RuntimeError("the websocket denial response is complete already")
        if message["type"] == START:
            if self.head is not None:
                raise RuntimeError("websocket.http.response.start sent twice")
            self.head = self._head(message)
            return b""
        if self.head is None:
            raise RuntimeError(
                "send websocket.http.response.start before its body messages"
            )
        data, self.head = self.head + (message.get("body") or b""), b""
        self.done = not message.get("more_body", False)
        return data

    @staticmethod
    def _head(message: dict[str, Any]) -> bytes:
        status = int(message["status"])
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("latin-1"))]
        close = False
        for name, value in message.get("headers") or ():
            name, value = _text(name), _text(value)
            if _BAD_HEADER.search(name + value):
                raise ValueError(f"invalid websocket denial header {name!r}")
            close = close or name.lower() == b"connection"
            lines.append(name + b": " + value + b"\r\n")
        if not close:  # the connection ends with this response
            lines.append(b"Connection: close\r\n")
        return b"".join(lines) + b"\r\n"
