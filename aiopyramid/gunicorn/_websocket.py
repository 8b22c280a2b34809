"""The worker's websockets: ``websockets``' sans-I/O protocol on gunicorn's transport.

gunicorn 27 frames websockets itself, without keepalive pings or
permessage-deflate, and slowly for large messages (:doc:`/websockets` has the
figures).  Under :class:`~aiopyramid.gunicorn.worker.AsyncGunicornWorker`
each upgraded connection is served by a :class:`Websocket` instead: the
``websockets`` library parses and builds every frame, as it does under uWSGI
(:mod:`aiopyramid.websocket._sansio` holds what the two share), and this
object speaks ASGI to the application, so the bridge, the mapper and the
views see what they see under any ASGI server.

gunicorn's connection protocol hands it the bytes (``feed_data``), the end
of the connection (``feed_eof``), and awaits :meth:`Websocket.run`; all of it
runs on the worker's loop, in the connection's task, with no task of its own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

from .._settings import DEFAULT_WEBSOCKET_MAX_SIZE
from ..websocket._inbox import DEFAULT_MAX_QUEUE_BYTES, Inbox
from ..websocket._sansio import Keepalive, MessageAssembler, server_protocol
from ._denial import DENIAL_MESSAGES, Denial

__all__ = ["DEFAULT_WEBSOCKET_MAX_SIZE", "Settings", "Websocket"]

Message = dict[str, Any]

#: Bytes a client may send before its handshake is accepted (it should send
#: none): reading pauses beyond this until the application decides.
_EARLY_LIMIT = 65536
_BAD_HEADER = re.compile(r"[\r\n\0]")


class ClientGone(OSError):
    """Sent on a closed websocket: ASGI 2.4 asks for an ``OSError``."""


@dataclass(frozen=True)
class Settings:
    """The worker's websocket settings, read once from the application's."""

    #: Largest message accepted (bytes; ``None``: no limit); larger: 1009.
    max_size: int | None = DEFAULT_WEBSOCKET_MAX_SIZE
    #: Bytes (characters, of text) of received messages waiting for the view
    #: beyond which reading pauses (``None``: only their count, 16, counts).
    max_queue_bytes: int | None = DEFAULT_MAX_QUEUE_BYTES
    #: Seconds between keepalive pings (``None``: no pings).
    ping_interval: float | None = 20.0
    #: Seconds to wait for the pong before closing with 1011 (``None``: forever).
    ping_timeout: float | None = 20.0
    #: Agree to permessage-deflate when the client offers it.
    per_message_deflate: bool = True
    #: Seconds to wait for the client to finish the closing handshake.
    close_timeout: float = 10.0


def _deflate() -> list[Any]:
    # websockets' own server defaults: 4 KiB windows and memLevel 5 keep a
    # compressed connection near 64 KiB instead of the 320 KiB of zlib's.
    return [
        ServerPerMessageDeflateFactory(
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings={"memLevel": 5},
        )
    ]


class Websocket:
    """One websocket connection under the worker, as an ASGI server serves it."""

    __slots__ = (
        "_app",
        "_assembler",
        "_connected",
        "_denial",
        "_drain",
        "_early",
        "_gone",
        "_inbox",
        "_keepalive",
        "_log",
        "_lost",
        "_paused",
        "_protocol",
        "_refused",
        "_scope",
        "_settings",
        "_transport",
        "_waiter",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        scope: dict[str, Any],
        app: Callable[..., Awaitable[None]],
        log: Any,
        *,
        settings: Settings,
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._transport = transport
        self._scope = scope
        self._app = app
        self._log = log
        self._settings = settings
        self._drain = drain
        # Made when the application accepts: a refused handshake costs none.
        self._protocol: Protocol | None = None
        self._assembler: MessageAssembler | None = None
        self._keepalive: Keepalive | None = None
        self._early: bytearray | None = None
        # Reading pauses while it is full (aiopyramid.websocket._inbox).
        self._inbox = Inbox(settings.max_queue_bytes)
        self._waiter: asyncio.Future[None] | None = None
        self._gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._connected = False
        self._refused = False
        self._denial: Denial | None = None
        self._lost = False
        self._paused = False

    # What gunicorn's connection protocol calls.

    def feed_data(self, data: bytes) -> None:
        """Bytes from the client (gunicorn's ``data_received``)."""
        protocol = self._protocol
        if protocol is None:
            early = self._early = (self._early or bytearray()) + data
            if len(early) > _EARLY_LIMIT:
                self._pause()
            return
        if not self._inbox.feed(data, self._parse, bool(protocol.extensions)):
            self._pause()  # the rest waits for the view to take messages

    def _parse(self, data: bytes) -> None:
        assert self._protocol is not None
        self._protocol.receive_data(data)
        self._after_receiving(self._protocol)

    def feed_eof(self) -> None:
        """The connection is gone (gunicorn's ``connection_lost``)."""
        self._lost = True
        if self._protocol is not None and self._protocol.state is not State.CLOSED:
            self._protocol.receive_eof()
        self._finished()

    async def run(self) -> None:
        """Run the application for this connection and end the conversation."""
        failed = False
        try:
            await self._app(self._scope, self._receive, self._send)
        except ClientGone:
            self._log.debug("Websocket closed while the application was sending")
        except Exception:
            failed = True
            self._log.exception("Error in websocket ASGI application")
        protocol = self._protocol
        if protocol is None:
            if not self._refused:
                # Ended without accepting: refused, as ASGI says.
                self._refuse(500 if failed else 403)
            return
        # Messages nobody will read: dropped, and reading resumed (it pauses
        # while they pile up) to see the client's close frame, or its EOF.
        self._inbox.clear()
        self._resume()
        if protocol.state is State.OPEN:
            code = CloseCode.INTERNAL_ERROR if failed else CloseCode.NORMAL_CLOSURE
            protocol.send_close(code)
            self._flush()
        # The client answers our close frame and ends the connection; one
        # that never does is left behind after the close timeout.
        await asyncio.wait([self._gone], timeout=self._settings.close_timeout)
        if self._keepalive is not None:
            self._keepalive.stop()

    # ASGI.

    async def _receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        while True:
            inbox = self._inbox
            if len(inbox):
                message = inbox.take()
                if self._paused and inbox.roomy:
                    self._room()
                if isinstance(message, str):
                    return {"type": "websocket.receive", "text": message}
                return {"type": "websocket.receive", "bytes": message}
            code = self._close_code()
            if code is not None:
                return {"type": "websocket.disconnect", "code": code}
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        protocol = self._protocol
        if kind == "websocket.send":
            if protocol is None:
                raise RuntimeError("send websocket.accept before websocket.send")
            if self._drain is not None:
                # Wait while the client is not reading, as gunicorn does for
                # responses: a slow reader cannot grow the write buffer.
                await self._drain()
            if protocol.state is not State.OPEN:
                raise ClientGone("the websocket is closed")
            text = message.get("text")
            if text is not None:
                protocol.send_text(text.encode("utf-8"))
            else:
                protocol.send_binary(message.get("bytes") or b"")
            self._flush()
        elif kind == "websocket.accept":
            if protocol is not None or self._refused:
                raise RuntimeError("websocket.accept sent twice")
            self._accept(message)
        elif kind in DENIAL_MESSAGES:
            self._deny(message)
        elif kind == "websocket.close":
            if protocol is None:
                self._refuse(403)  # ASGI: close before accept refuses with 403
            elif protocol.state is State.OPEN:
                protocol.send_close(
                    message.get("code", 1000), message.get("reason", "")
                )
                self._flush()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a websocket")

    # The handshake.

    def _accept(self, message: Message) -> None:
        if self._lost:
            raise ClientGone("the client left before the handshake was accepted")
        chosen = message.get("subprotocol")
        settings = self._settings
        # gunicorn has parsed the request: websockets' server protocol only
        # answers it (key, extensions, subprotocol), and a protocol that
        # starts open frames the connection, with the extensions agreed.
        handshake = ServerProtocol(
            extensions=_deflate() if settings.per_message_deflate else None,
            select_subprotocol=lambda _protocol, _offered: chosen,
            logger=_LOG,
        )
        request = Request(
            self._scope["path"],
            Headers(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in self._scope["headers"]
            ),
        )
        response = handshake.accept(request)
        for name, value in message.get("headers") or ():
            name = name.decode("latin-1") if isinstance(name, bytes) else name
            value = value.decode("latin-1") if isinstance(value, bytes) else value
            if _BAD_HEADER.search(name + value):
                raise ValueError(f"invalid websocket response header {name!r}")
            response.headers[name] = value
        if response.status_code != 101:  # gunicorn let a bad handshake through
            self._write(response.serialize())
            self._refused = True
            self._finished()
            raise ClientGone(f"handshake refused with {response.status_code}")
        protocol = server_protocol(settings.max_size)
        protocol.extensions = handshake.extensions
        self._protocol = protocol
        self._write(response.serialize())
        self._assembler = MessageAssembler(protocol)
        if settings.ping_interval:
            self._keepalive = Keepalive(
                protocol, settings.ping_interval, settings.ping_timeout, self._flush
            )
            self._keepalive.start()
        early, self._early = self._early, None
        self._resume()
        if early:
            self.feed_data(bytes(early))

    def _deny(self, message: Message) -> None:
        """Refuse the handshake with the application's own response."""
        if self._protocol is not None:
            raise RuntimeError("the handshake was accepted: too late to deny it")
        if self._denial is None:
            if self._refused:
                raise RuntimeError("the handshake was refused already")
            self._refused = True
            self._denial = Denial()
        self._write(self._denial.take(message))
        if self._denial.done:
            self._finished()

    def _refuse(self, status: int) -> None:
        self._refused = True
        reason = {403: b"Forbidden"}.get(status, b"Internal Server Error")
        self._write(
            b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            % (status, reason)
        )
        self._finished()

    # Frames in, bytes out.

    def _after_receiving(self, protocol: Protocol) -> None:
        assert self._assembler is not None
        messages = self._assembler.take(protocol.events_received(), self._pong)
        self._flush()  # pongs, the close reply, or the close of a failure
        if messages and protocol.state is State.OPEN:
            self._inbox.put(messages)
            if self._inbox.full:
                self._pause()
        if protocol.state is not State.OPEN:
            self._inbox.drop_backlog()  # nothing after the close frame counts
            self._resume()  # keep reading: the close reply, or the EOF
        self._wake()

    def _room(self) -> None:
        """Room in the inbox again: parse what waits, then read if it all fit."""
        inbox = self._inbox
        if inbox.more(self._parse) and not inbox.full:
            self._resume()

    def _pong(self, payload: bytes) -> None:
        if self._keepalive is not None:
            self._keepalive.pong(payload)

    def _flush(self) -> None:
        assert self._protocol is not None
        for data in self._protocol.data_to_send():
            if data:
                self._write(data)
            else:  # the protocol's end of stream: the conversation is over
                self._finished()
        if self._protocol.state is not State.OPEN:
            self._wake()

    def _write(self, data: bytes) -> None:
        if not self._lost:
            self._transport.write(data)

    def _close_code(self) -> int | None:
        """The close code to give the application, or None while open."""
        protocol = self._protocol
        if protocol is None:
            return CloseCode.ABNORMAL_CLOSURE if self._lost else None
        if protocol.state is State.OPEN:
            return None
        if protocol.close_rcvd is not None:
            return protocol.close_rcvd.code
        if protocol.close_sent is not None and not self._lost:
            return protocol.close_sent.code
        return CloseCode.ABNORMAL_CLOSURE

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _finished(self) -> None:
        if not self._gone.done():
            self._gone.set_result(None)
        if self._keepalive is not None:
            self._keepalive.stop()
        self._wake()

    def _pause(self) -> None:
        if not self._paused and not self._lost:
            self._paused = True
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and not self._lost:
            self._paused = False
            self._transport.resume_reading()


#: websockets' own logger: left unconfigured, it says only what goes wrong.
_LOG = logging.getLogger("websockets.server")
