"""The ``ws`` object of a websocket served through the ASGI bridge.

The ASGI server (in :class:`~aiopyramid.gunicorn.worker.AsyncGunicornWorker`,
:mod:`aiopyramid.gunicorn._websocket` on the ``websockets`` library) speaks
the protocol: framing, ping/pong, fragmentation, compression and the maximum
message size are its business.  This object turns its
``websocket.*`` messages into the ``ws`` interface shared with uWSGI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from .._types import Receive, Scope, Send, WebsocketAccept, WebsocketSend
from .exceptions import WebsocketClosed

#: The environ key under which a websocket request carries its ``ws`` object
#: (the ASGI bridge puts it there; the mapper takes it out).
WEBSOCKET_KEY = "aiopyramid.websocket"


class ASGIWebsocket:
    """One websocket connection, as views see it (``ws``).

    Every method is a coroutine: ``await ws.recv()`` in ``async def`` views,
    ``yield from ws.recv()`` in legacy generator views.
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        #: Whether the handshake has been accepted.
        self.accepted = False
        #: Whether the connection is closed (by either side).
        self.closed = False
        #: The close code once closed (1006 when the client vanished).
        self.close_code: int | None = None
        #: The subprotocol agreed in the handshake, if any.
        self.subprotocol: str | None = None
        #: Deliver text frames as UTF-8 ``bytes`` too.
        self.use_bytes = False
        #: Called once the handshake is accepted (the bridge's access log).
        self.on_accept: Callable[[], None] | None = None

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols", ()))

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Complete the handshake (done by the mapper before the view runs)."""
        message: WebsocketAccept = {
            "type": "websocket.accept",
            "subprotocol": subprotocol,
        }
        extra = list(headers)
        if extra:
            message["headers"] = extra
        self.accepted = True
        self.subprotocol = subprotocol
        await self._send(message)
        if self.on_accept is not None:
            self.on_accept()

    async def recv(self) -> str | bytes | None:
        """Wait for the next message; ``None`` once the connection has closed.

        Text frames arrive as ``str`` (``bytes`` when :attr:`use_bytes` is
        set), binary frames as ``bytes``.  Never raises for a close, clean or
        not.  Only one coroutine may wait in ``recv()`` at a time.
        """
        while not self.closed:
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text: str | None = message.get("text")
                if text is not None:
                    return text.encode("utf-8") if self.use_bytes else text
                data: bytes = message.get("bytes") or b""
                return data
            if kind == "websocket.disconnect":
                self.closed = True
                self.close_code = message.get("code", 1005)
        return None

    async def send(self, message: str | bytes) -> None:
        """Send ``message``: a text frame for ``str``, a binary frame for ``bytes``.

        Raises :class:`~aiopyramid.websocket.exceptions.WebsocketClosed` if
        the connection is closed; the mapper ends a view that lets it escape
        quietly, and code that sends to many connections should catch it.
        """
        if self.closed:
            raise WebsocketClosed(f"websocket closed with code {self.close_code}")
        if isinstance(message, str):
            frame: WebsocketSend = {"type": "websocket.send", "text": message}
        else:
            frame = {"type": "websocket.send", "bytes": bytes(message)}
        try:
            await self._send(frame)
        except OSError as error:  # ASGI 2.4: the client is gone
            self.closed = True
            self.close_code = 1006
            raise WebsocketClosed("the client went away") from error

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; does nothing if already closed."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        with contextlib.suppress(OSError):  # already gone: closed is what we wanted
            await self._send(
                {"type": "websocket.close", "code": code, "reason": reason}
            )
