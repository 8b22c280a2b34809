"""The ``ws`` object of a websocket served through granian's RSGI interface.

granian frames the connection itself (tungstenite, in Rust): it answers
pings, reassembles fragments, checks UTF-8 and close codes, and refuses a
frame over 16 MiB or a message over 64 MiB (tungstenite's defaults, which
granian 2.8.9 offers no setting for).  It reads a message only when
``receive()`` is awaited, so a view that does not read leaves the bytes in
the kernel's buffers: there is no queue here to bound.  What it cannot do,
and this object says so instead of pretending:

* announce a subprotocol (its ``accept()`` takes none): :attr:`subprotocol`
  stays ``None``, whatever the mapper chose;
* put a code in its close frame: the frame it sends is empty (the client
  reads ``1005``), and :attr:`close_code` is the code the adapter meant,
  for the access line;
* two sends at once (the second fails): sends take turns on a lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from ._bridged import BridgedWebsocket
from .exceptions import WebsocketClosed

__all__ = ["CLOSE", "RSGIWebsocket"]

log = logging.getLogger("aiopyramid.rsgi")

#: RSGI's message kind (``WebsocketMessage.kind``) of a close.
CLOSE = 0


class RSGIWebsocket(BridgedWebsocket):
    """One websocket connection on granian, as views see it (``ws``).

    ``max_size`` is the largest message handed to the view (``None``: up to
    granian's own 64 MiB); a larger one closes the connection (``1009``).
    ``senders`` (:class:`aiopyramid._sending.Senders`) keeps the send
    deadline; when it passes, ``task`` (the connection's) is cancelled.
    :attr:`subprotocol` is always ``None``: granian's handshake cannot
    announce one.
    """

    #: Logged once per process: the first subprotocol granian could not send.
    _warned = False

    def __init__(
        self,
        scope: Any,
        protocol: Any,
        max_size: int | None = None,
        senders: Any = None,
        task: asyncio.Task[Any] | None = None,
    ) -> None:
        super().__init__()
        self.scope = scope
        self.protocol = protocol
        self.max_size = max_size
        self.senders = senders
        self.task = task
        self._transport: Any = None
        self._sending = asyncio.Lock()
        self._ended = False
        #: Whether the send deadline passed (the connection was cancelled).
        self.timed_out = False

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        offered = self.scope.headers.get("sec-websocket-protocol") or ""
        return [name.strip() for name in offered.split(",") if name.strip()]

    async def _handshake(
        self, subprotocol: str | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> None:
        """Accept on granian, which sends neither ``subprotocol`` nor ``headers``.

        Its handshake response has no room for them; a subprotocol is warned
        about once, since the client will see none.
        """
        if subprotocol is not None and not RSGIWebsocket._warned:
            RSGIWebsocket._warned = True
            log.warning(
                "granian cannot announce the websocket subprotocol %r that the "
                "view chose for %s: the connection goes on with none "
                "(ws.subprotocol is None). Serve views that need subprotocols "
                "with make_asgi_app or the gunicorn worker.",
                subprotocol,
                self.scope.path,
            )
        self._transport = await self.protocol.accept()
        self.accepted = True

    async def _receive_one(self) -> str | bytes | None:
        try:
            message = await self._transport.receive()
        except RuntimeError:
            # granian's RSGIProtocolClosed (a RuntimeError, caught by its
            # base so that no import of granian's extension is needed): the
            # client vanished, broke the protocol, or sent a frame or
            # message over granian's own limits.
            self._closed(1006)
            return None
        if message.kind == CLOSE:
            # granian has answered the client's close frame with its code;
            # the code itself is not handed over.
            self._closed(1005)
            return None
        # str for a text message, bytes for a binary one.
        data: str | bytes = message.data
        limit = self.max_size
        if limit is not None and len(data) > limit // 4 and _size(data) > limit:
            await self.close(1009)
            return None
        return data

    async def _send_one(self, message: str | bytes) -> None:
        # granian refuses a send while another is under way: one at a time
        # (a view and a broadcast may send to the same connection at once).
        async with self._sending:
            transport = self._transport
            if self.closed or transport is None:
                # Closed while this send waited its turn (the deadline of the
                # send before it passed, or the view closed meanwhile).
                raise WebsocketClosed(f"websocket closed with code {self.close_code}")
            senders = self.senders
            if senders is not None:
                senders.begin(self)
            try:
                if isinstance(message, str):
                    await transport.send_str(message)
                else:
                    await transport.send_bytes(bytes(message))
            except RuntimeError as error:  # granian: the client is gone
                # The mapper tells a client gone from a bug by an OSError
                # cause (as ASGI servers raise): granian's ProtocolClosed is
                # a RuntimeError, so it is handed on as a ConnectionError.
                gone = ConnectionError(f"granian: {error}")
                raise self._gone() from gone
            finally:
                if senders is not None:
                    senders.end(self)

    async def _send_close(self, code: int, reason: str) -> None:
        """Give the connection back (:meth:`end`): its close frame is empty.

        granian sends an empty close frame whatever ``code`` and ``reason``
        say: :attr:`close_code` keeps ``code`` for the access line.
        """
        self.end()

    def end(self) -> None:
        """Give the connection back to granian, once: it closes it and ends TCP.

        granian ends TCP once both halves of the connection are gone: the
        sending half goes back with ``close()``, the receiving half with
        the transport object, dropped here rather than whenever the garbage
        collector breaks the request's cycles (until then the socket would
        stay open, in CLOSE_WAIT once the client has gone).
        """
        if not self._ended:
            self._ended = True
            self.protocol.close(self.close_code or 1000)
            self._transport = None

    def time_out(self) -> None:
        """The client took nothing for the send deadline: end the connection."""
        self.timed_out = True
        if not self.closed:
            self._closed(1006)
        self.end()
        task = self.task
        if task is not None and not task.done():
            task.cancel()


def _size(data: str | bytes) -> int:
    """The size of a message in bytes (text as UTF-8)."""
    return len(data.encode("utf-8")) if isinstance(data, str) else len(data)
