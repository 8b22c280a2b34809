"""Exceptions of aiopyramid's websocket support."""

from __future__ import annotations

import greenlet

from ..exceptions import AiopyramidError

__all__ = ["WebsocketClosed"]


class WebsocketClosed(greenlet.GreenletExit, AiopyramidError):
    """Ends the request greenlet of a websocket connection that has closed.

    A :class:`greenlet.GreenletExit`, so a greenlet that dies of it ends
    quietly; wrap the application in
    :func:`aiopyramid.websocket.helpers.ignore_websocket_closed` to keep it out
    of server logs that report it anyway (uWSGI does).  Also an
    :class:`~aiopyramid.exceptions.AiopyramidError`, and so an
    :class:`Exception`: ``except Exception`` around ``ws.send()`` catches it.
    """
