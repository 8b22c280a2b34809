"""A class-based websocket view with open, message and close callbacks."""

from __future__ import annotations

import inspect
from typing import Any

from .._unwrap import allow_yield_from
from .interface import Websocket

__all__ = ["WebsocketConnectionView"]

_CALLBACKS = ("on_open", "on_message", "on_close")


async def _settle(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


class WebsocketConnectionView:
    """Base class for websocket views that react to events.

    Subclass it, set ``__view_mapper__`` (or pass ``mapper=`` to
    ``view_config``) to the mapper for the server, and override any of
    :meth:`on_open`, :meth:`on_message` and :meth:`on_close`.  Each may be a
    plain method, an ``async def`` method or a legacy generator method using
    ``yield from``.  The connection is ``self.ws``; the view also has
    ``self.context`` and ``self.request`` as any Pyramid class view does.
    """

    #: The connection (``None`` until :meth:`__call__` is given it).
    ws: Websocket = None  # type: ignore[assignment]

    def __init__(self, context: Any, request: Any) -> None:
        self.context = context
        self.request = request

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _CALLBACKS:
            allow_yield_from(cls.__dict__.get(name))

    async def __call__(self, ws: Websocket) -> None:
        """Serve one connection: open, every message in turn, then close."""
        self.ws = ws
        try:
            await _settle(self.on_open())
            while True:
                message = await ws.recv()
                if message is None:
                    break
                await _settle(self.on_message(message))
        finally:
            await _settle(self.on_close())

    def send(self, message: str | bytes) -> Any:
        """Send ``message`` on the connection; ``await`` (or ``yield from``) it."""
        return self.ws.send(message)

    def on_open(self) -> Any:
        """Called once the connection is open, before any message arrives."""

    def on_message(self, message: str | bytes) -> Any:
        """Called with each message received (``str`` for text, ``bytes`` otherwise)."""

    def on_close(self) -> Any:
        """Called once the connection has closed, whoever closed it."""
