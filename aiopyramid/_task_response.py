"""What the ASGI bridge's and the RSGI adapter's responses share.

Both serve a request as an asyncio task of the server's, and a
:class:`TaskResponse` is the response of one such request, whatever carries
its bytes (ASGI messages: :class:`aiopyramid._asgi_response.Response`;
granian's calls: :class:`aiopyramid._rsgi_response.RSGIResponse`).  It
hands them over under the send deadline (:mod:`aiopyramid._sending`),
cancels the task when the deadline passes, tells a send that failed (its
client gone) from a failure of the application's, and tells the
cancellations aiopyramid makes from the others.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from ._failures import report_failure
from ._response import WSGIResponse
from ._sending import Senders
from ._types import Environ
from ._wsgi_input import Refuse

__all__ = ["TaskResponse", "uncancel"]


def uncancel(task: asyncio.Task[Any] | None) -> None:
    """Take back one cancellation of ``task`` that aiopyramid made and handled.

    The request (or connection) has unwound and nobody is left to answer:
    the server's task goes on as if never cancelled (Python 3.11+;
    earlier Pythons count no cancellations, so there is nothing to undo).
    """
    withdraw = getattr(task, "uncancel", None)
    if withdraw is not None:
        withdraw()


class TaskResponse(WSGIResponse):
    """The response of a request served as its own task (``task``).

    With ``senders``, each piece of the body is handed to the server under
    their deadline, without holding a request slot; ``task`` is cancelled
    when the deadline passes (:attr:`timed_out` then says so).  A subclass
    sends the bytes, each piece inside ``with self:`` (:meth:`__enter__`),
    and answers with refusals of its own through :meth:`refuse`.
    """

    __slots__ = ("lost", "senders", "task", "timed_out")

    #: Send a whole plain-text response of the server's own (its status and
    #: text), at once or through an awaitable, as the subclass sends.
    refuse: Refuse

    def __init__(
        self, senders: Senders | None = None, task: asyncio.Task[Any] | None = None
    ) -> None:
        # The base named, not super(): on Python 3.11 super() makes an object
        # per call, and every request makes its response (the subclasses
        # call this one so too).
        WSGIResponse.__init__(self)
        self.senders = senders
        self.task = task
        #: Whether the request was cancelled because its client stopped reading.
        self.timed_out = False
        #: What the server raised when handed a piece, if it did: the client
        #: is gone, which is no failure of the application's.
        self.lost: BaseException | None = None

    def __enter__(self) -> None:
        """Begin handing bytes to the server: no slot held, under the deadline.

        ``with self:`` rather than an object of its own: nothing is
        allocated per piece for it.
        """
        senders = self.senders
        if senders is not None:
            senders.begin(self)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """The server took the bytes, or raised (kept in :attr:`lost`)."""
        if isinstance(error, Exception):
            self.lost = error
        senders = self.senders
        if senders is not None:
            senders.end(self)

    def time_out(self) -> None:
        """The client took nothing for the send deadline: cancel the request."""
        task = self.task
        if task is not None and not task.done():
            self.timed_out = True
            task.cancel()

    async def answer_failure(
        self, environ: Environ, error: Exception, log: logging.Logger
    ) -> bool:
        """Answer ``error``, raised serving ``environ``; ``False``: re-raise it.

        A piece the server could not take is the client gone, and the server
        knows (it raised): nothing failed here, and ``log`` says so at debug
        level.  Anything else is a failure, reported once
        (:func:`~aiopyramid._failures.report_failure`) and answered ``500``;
        too late for that once the response has started: the caller
        re-raises, and the server cuts the response off.
        """
        lost, self.lost = self.lost, None  # (a cycle through it)
        if error is lost:
            log.debug("Response not sent: %s: %s", type(error).__name__, error)
            return True
        report_failure(environ, error)
        if self.started:
            return False
        refusing = self.refuse(500, "Internal Server Error.")
        if refusing is not None:
            await refusing
        return True

    def withdraw_cancel(self, disconnected: bool) -> bool:
        """Take back aiopyramid's own cancellation of the task; whether it was one.

        Called as the task's cancellation has unwound the request.  Ours
        when its client went away (``disconnected``, as the request's watch
        says) or stopped reading (:attr:`timed_out`): there is nobody to
        answer, and the task goes on as if never cancelled.
        """
        task = self.task
        if task is None or not (disconnected or self.timed_out):
            return False
        uncancel(task)
        return True
