"""Helpers for applications that serve websockets."""

from __future__ import annotations

from collections.abc import Iterable

from .._types import Environ, StartResponse, WSGIApp
from .exceptions import WebsocketClosed

__all__ = ["ignore_websocket_closed"]


def ignore_websocket_closed(app: WSGIApp) -> WSGIApp:
    """Wrap a WSGI ``app`` so that a bare :class:`WebsocketClosed` ends quietly.

    A :class:`~aiopyramid.websocket.exceptions.WebsocketClosed` raised for a
    connection that simply closed is swallowed (the response is empty); one
    raised with a cause (``raise WebsocketClosed from error``) is a real
    failure and is raised again.
    """

    def websocket_closed_ignored(
        environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            return app(environ, start_response)
        except WebsocketClosed as closed:
            if closed.__cause__ is not None:
                raise
            return []

    return websocket_closed_ignored
