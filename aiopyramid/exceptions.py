"""Exceptions raised by aiopyramid."""

from __future__ import annotations

__all__ = ["AiopyramidError", "ScopeError"]


class AiopyramidError(Exception):
    """Base class of every exception aiopyramid raises on its own account.

    Besides :class:`ScopeError`: the broadcast errors
    (:class:`~aiopyramid.broadcast.BroadcastError` and its subclasses),
    :class:`~aiopyramid.websocket.exceptions.WebsocketClosed`, and the
    private errors of ``pcreate`` and of the ASGI bridge's limits (a request
    head or body too large), which also keep their other bases.
    """


class ScopeError(AiopyramidError):
    """Code that must wait for a coroutine ran where it cannot wait.

    Raised, for example, when a :func:`~aiopyramid.helpers.synchronize`-d
    function is called from the greenlet that runs the event loop (waiting
    there would block every other request), or from a thread that has no
    event loop to hand the coroutine to.  The message says what to do instead.
    """
