"""The ``ws`` object of a websocket served through the ASGI bridge.

The ASGI server (in :class:`~aiopyramid.gunicorn.worker.AsyncGunicornWorker`,
:mod:`aiopyramid.gunicorn._websocket` on the ``websockets`` library) speaks
the protocol: framing, ping/pong, fragmentation, compression and the maximum
message size are its business.  This object turns its
``websocket.*`` messages into the ``ws`` interface shared with uWSGI
(:class:`~._bridged.BridgedWebsocket` holds what it shares with RSGI's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from .._types import Receive, Scope, Send, WebsocketAccept, WebsocketSend
from ._bridged import BridgedWebsocket

__all__ = ["ASGIWebsocket"]


class ASGIWebsocket(BridgedWebsocket):
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
        super().__init__()
        self.scope = scope
        self._receive = receive
        self._send = send

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols", ()))

    async def _handshake(
        self, subprotocol: str | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> None:
        message: WebsocketAccept = {
            "type": "websocket.accept",
            "subprotocol": subprotocol,
        }
        extra = list(headers)
        if extra:
            message["headers"] = extra
        # Accepted before the message goes: if the server fails it (the
        # client is gone), the bridge sends no refusal after it.
        self.accepted = True
        self.subprotocol = subprotocol
        await self._send(message)

    async def _receive_one(self) -> str | bytes | None:
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text: str | None = message.get("text")
            if text is not None:
                return text
            data: bytes = message.get("bytes") or b""
            return data
        if kind == "websocket.disconnect":
            self._closed(message.get("code", 1005))
        return None

    async def _send_one(self, message: str | bytes) -> None:
        if isinstance(message, str):
            frame: WebsocketSend = {"type": "websocket.send", "text": message}
        else:
            frame = {"type": "websocket.send", "bytes": bytes(message)}
        try:
            await self._send(frame)
        except OSError as error:  # ASGI 2.4: the client is gone
            raise self._gone() from error

    async def _send_close(self, code: int, reason: str) -> None:
        with contextlib.suppress(OSError):  # already gone: closed is what we wanted
            await self._send(
                {"type": "websocket.close", "code": code, "reason": reason}
            )
