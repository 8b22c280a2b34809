"""What the ``ws`` of a websocket framed by its server holds, on ASGI and RSGI.

An ASGI server (:mod:`._asgi`) and granian's RSGI interface (:mod:`._rsgi`)
frame the connection themselves and hand over whole messages, so the two
``ws`` objects differ only in how they speak to their server.
:class:`BridgedWebsocket` is the rest, written once: the state the mapper
and the view read, the rules of the ``ws`` interface (``recv()`` gives
``None`` once closed, ``send()`` raises
:class:`~aiopyramid.websocket.exceptions.WebsocketClosed`, ``close()``
closes once), text handed over as ``bytes`` on request, and the
connection's access lines.  Nothing here does I/O: a subclass does the
handshake, one message in, one out, and the close, on its server.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from .._types import AccessLogger, Environ
from .exceptions import WebsocketClosed

__all__ = ["WEBSOCKET_KEY", "BridgedWebsocket"]

#: The environ key under which a websocket request carries its ``ws`` object
#: (the ASGI bridge and the RSGI adapter put it there; the mapper takes it out).
WEBSOCKET_KEY = "aiopyramid.websocket"


class BridgedWebsocket:
    """One websocket connection framed by its server, as views see it (``ws``).

    Every method is a coroutine: ``await ws.recv()`` in ``async def`` views,
    ``yield from ws.recv()`` in legacy generator views.  A subclass gives
    :attr:`subprotocols` and the transport's steps (:meth:`_handshake`,
    :meth:`_receive_one`, :meth:`_send_one`, :meth:`_send_close`), and
    :meth:`end` if its server wants the connection back.
    """

    def __init__(self) -> None:
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
        # The access lines' logger, their request and when it began (log_to).
        self._access: tuple[AccessLogger, Environ, float] | None = None

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        raise NotImplementedError

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Complete the handshake (done by the mapper before the view runs).

        Writes the access line ``101`` once the server has accepted.
        """
        await self._handshake(subprotocol, headers)
        self.log("101")

    async def recv(self) -> str | bytes | None:
        """Wait for the next message; ``None`` once the connection has closed.

        Text frames arrive as ``str`` (``bytes`` when :attr:`use_bytes` is
        set), binary frames as ``bytes``.  Never raises for a close, clean or
        not.  Only one coroutine may wait in ``recv()`` at a time.
        """
        while not self.closed:
            message = await self._receive_one()
            if message is not None:
                if self.use_bytes and isinstance(message, str):
                    return message.encode("utf-8")
                return message
        return None

    async def send(self, message: str | bytes) -> None:
        """Send ``message``: a text frame for ``str``, a binary frame for ``bytes``.

        Raises :class:`~aiopyramid.websocket.exceptions.WebsocketClosed` if
        the connection is closed; the mapper ends a view that lets it escape
        quietly, and code that sends to many connections should catch it.
        """
        if self.closed:
            raise WebsocketClosed(f"websocket closed with code {self.close_code}")
        await self._send_one(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; does nothing if already closed."""
        if self.closed:
            return
        self._closed(code)
        await self._send_close(code, reason)

    def end(self) -> None:
        """Give the closed connection back to its server (here: nothing to do)."""

    async def finish(self) -> None:
        """End an accepted connection once the application has returned.

        Closes it with ``1000`` if the view did not, gives it back to the
        server (:meth:`end`), and writes its last access line: the close code.
        """
        await self.close()
        self.end()
        self.log(str(self.close_code))

    def log_to(self, logger: AccessLogger | None, environ: Environ) -> None:
        """Write this connection's access lines for ``environ`` with ``logger``.

        Each gives the time since this call; ``logger`` ``None``: no lines.
        """
        if logger is not None:
            self._access = (logger, environ, time.monotonic())

    def log(self, status: str) -> None:
        """Write an access line with ``status`` (if :meth:`log_to` gave a logger)."""
        access = self._access
        if access is not None:
            logger, environ, started_at = access
            logger(environ, status, [], 0, time.monotonic() - started_at)

    # What a subclass does on its server.

    async def _handshake(
        self, subprotocol: str | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> None:
        """Accept the handshake on the server, and set :attr:`accepted`."""
        raise NotImplementedError

    async def _receive_one(self) -> str | bytes | None:
        """The next message from the server; ``None`` for anything else.

        ``None`` once the connection has ended (marked by :meth:`_closed`),
        or, while it is open, for an event that is no message (:meth:`recv`
        then asks again).
        """
        raise NotImplementedError

    async def _send_one(self, message: str | bytes) -> None:
        """Hand ``message`` to the open connection's server.

        A client gone meanwhile: ``raise self._gone() from`` an
        :class:`OSError` (the mapper tells a client gone from a bug by it).
        """
        raise NotImplementedError

    async def _send_close(self, code: int, reason: str) -> None:
        """Close the connection on the server (:attr:`closed` is set already)."""
        raise NotImplementedError

    def _closed(self, code: int) -> None:
        self.closed = True
        self.close_code = code

    def _gone(self) -> WebsocketClosed:
        """The client went away: closed with ``1006``; the error to raise."""
        self._closed(1006)
        return WebsocketClosed("the client went away")
