"""Exceptions raised by aiopyramid."""

from __future__ import annotations

import asyncio

__all__ = ["AiopyramidError", "ClientDisconnected", "ScopeError"]

#: The message a server adapter cancels a request's task with when its client
#: leaves; the driver turns the cancellation into :class:`ClientDisconnected`.
DISCONNECT_MESSAGE = "aiopyramid: the client disconnected"


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


class ClientDisconnected(asyncio.CancelledError):
    """The client left before its request was answered.

    Raised in the request's code at the point where it waits (an ``await``,
    a :func:`~aiopyramid.helpers.synchronize`-d call), in place of the plain
    :class:`asyncio.CancelledError` of a cancelled task.  It *is* a
    cancellation (a :class:`BaseException`): ``except Exception`` does not
    swallow it, Pyramid's exception views never see it, ``finally`` blocks
    and ``except asyncio.CancelledError`` run as for any cancellation.  Its
    own class lets an observability integration tell it from a failure (see
    :mod:`aiopyramid.observability`); the access log records it as 499.
    """
