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
from collections.abc import Callable, Iterable
from typing import Any

from .exceptions import WebsocketClosed

__all__ = ["CLOSE", "TEXT", "RSGIWebsocket"]

log = logging.getLogger("aiopyramid.rsgi")

#: RSGI's message kinds (``WebsocketMessage.kind``): a close, then text.
CLOSE, TEXT = 0, 2


class RSGIWebsocket:
    """One websocket connection on granian, as views see it (``ws``).

    ``max_size`` is the largest message handed to the view (``None``: up to
    granian's own 64 MiB); a larger one closes the connection (``1009``).
    ``senders`` (:class:`aiopyramid._sending.Senders`) keeps the send
    deadline; when it passes, ``task`` (the connection's) is cancelled.
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
        self.scope = scope
        self.protocol = protocol
        self.max_size = max_size
        self.senders = senders
        self.task = task
        self._transport: Any = None
        self._sending = asyncio.Lock()
        self._ended = False
        #: Whether the handshake has been accepted.
        self.accepted = False
        #: Whether the connection is closed (by either side).
        self.closed = False
        #: The close code once closed (1006 when the client vanished).
        self.close_code: int | None = None
        #: Always ``None``: granian's handshake cannot announce a subprotocol.
        self.subprotocol: str | None = None
        #: Deliver text frames as UTF-8 ``bytes`` too.
        self.use_bytes = False
        #: Called once the handshake is accepted (the adapter's access log).
        self.on_accept: Callable[[], None] | None = None
        #: Whether the send deadline passed (the connection was cancelled).
        self.timed_out = False

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        offered = self.scope.headers.get("sec-websocket-protocol") or ""
        return [name.strip() for name in offered.split(",") if name.strip()]

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Complete the handshake (done by the mapper before the view runs).

        granian's handshake response has no room for ``subprotocol`` or
        ``headers``: they are not sent, and a subprotocol is warned about
        once, since the client will see none.
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
        if self.on_accept is not None:
            self.on_accept()

    async def recv(self) -> str | bytes | None:
        """Wait for the next message; ``None`` once the connection has closed.

        Text frames arrive as ``str`` (``bytes`` when :attr:`use_bytes` is
        set), binary frames as ``bytes``.  Never raises for a close, clean or
        not.  Only one coroutine may wait in ``recv()`` at a time.
        """
        if self.closed:
            return None
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
        data = message.data
        limit = self.max_size
        if limit is not None and len(data) > limit // 4 and _size(data) > limit:
            await self.close(1009)
            return None
        if message.kind == TEXT and self.use_bytes:
            return data.encode("utf-8")  # type: ignore[no-any-return]
        return data  # type: ignore[no-any-return]

    async def send(self, message: str | bytes) -> None:
        """Send ``message``: a text frame for ``str``, a binary frame for ``bytes``.

        Raises :class:`~aiopyramid.websocket.exceptions.WebsocketClosed` if
        the connection is closed; the mapper ends a view that lets it escape
        quietly, and code that sends to many connections should catch it.
        """
        if self.closed:
            raise WebsocketClosed(f"websocket closed with code {self.close_code}")
        # granian refuses a send while another is under way: one at a time
        # (a view and a broadcast may send to the same connection at once).
        async with self._sending:
            senders = self.senders
            if senders is not None:
                senders.begin(self)
            try:
                if isinstance(message, str):
                    await self._transport.send_str(message)
                else:
                    await self._transport.send_bytes(bytes(message))
            except RuntimeError as error:  # granian: the client is gone
                self._closed(1006)
                # The mapper tells a client gone from a bug by an OSError
                # cause (as ASGI servers raise): granian's ProtocolClosed is
                # a RuntimeError, so it is handed on as a ConnectionError.
                gone = ConnectionError(f"granian: {error}")
                raise WebsocketClosed("the client went away") from gone
            finally:
                if senders is not None:
                    senders.end(self)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``; does nothing if already closed.

        granian sends an empty close frame whatever ``code`` and ``reason``
        say: :attr:`close_code` keeps ``code`` for the access line.
        """
        if self.closed:
            return
        self._closed(code)
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

    def _closed(self, code: int) -> None:
        self.closed = True
        self.close_code = code

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
