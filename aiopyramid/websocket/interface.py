"""The ``ws`` interface: what a websocket view may rely on, whatever the server.

Every mapper hands its views an object with these methods and attributes:
:class:`~aiopyramid.websocket.config.WebsocketMapper` an ASGI connection
(under ``AsyncGunicornWorker`` and any ASGI server),
:class:`~aiopyramid.websocket.config.UWSGIWebsocketMapper` a connection
framed on uWSGI's socket.  Type a view's argument with :class:`Websocket`::

    from aiopyramid.websocket.interface import Websocket

    async def echo(ws: Websocket) -> None:
        while (message := await ws.recv()) is not None:
            await ws.send(message)

It is a :class:`typing.Protocol`, checked at run time too:
``isinstance(ws, Websocket)`` is true for the ``ws`` of every mapper.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Websocket"]


@runtime_checkable
class Websocket(Protocol):
    """One websocket connection, as a view receives it (``ws``).

    Each method is a coroutine: ``await`` it (or ``yield from`` it in a
    legacy generator view).
    """

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake, or ``None``."""

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (or closing), by either side."""

    @property
    def close_code(self) -> int | None:
        """How the connection ended (``1006``: abruptly); ``None`` while open."""

    async def recv(self) -> str | bytes | None:
        """The next message (``str`` for text, ``bytes`` for binary frames).

        ``None`` once the connection has closed, cleanly or not: never
        raises for a close.  Only one coroutine may wait in it at a time.
        """

    async def send(self, message: str | bytes) -> None:
        """Send ``message``: a text frame for ``str``, a binary one for ``bytes``.

        Raises :class:`~aiopyramid.websocket.exceptions.WebsocketClosed` on
        a closed connection.
        """

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; does nothing once closed."""
