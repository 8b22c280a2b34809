"""The response half of the ASGI bridge: the response as ASGI messages.

One :class:`Response` per request (on
:class:`aiopyramid._task_response.TaskResponse`, shared with the RSGI
adapter, and its WSGI side :class:`aiopyramid._response.WSGIResponse`).  It
also sends the bridge's own refusals (``400``, ``408``, ``413``, ``503``),
and a logged ``500`` in place of a response whose headers could split it.
Its body goes to the server in pieces, each under the send deadline
(:mod:`aiopyramid._sending`).  :class:`Watch` cancels a request whose client
went away.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar

from ._sending import H2_PIECE, PIECE, Ready, Senders
from ._task_response import TaskResponse
from ._types import (
    BodyType,
    Receive,
    ResponseBody,
    ResponseStart,
    Send,
    StartType,
)
from .exceptions import DISCONNECT_MESSAGE


class Response(TaskResponse):
    """A response sent as ASGI messages through the server's ``send``.

    With ``senders``, each piece of the body is sent under their deadline,
    without holding a request slot; ``task`` is the request's, cancelled
    when the deadline passes (:attr:`timed_out` then says so).  ``ready``
    (the server's :data:`~aiopyramid._sending.READY` extension) says when
    the connection can take the next piece.  What ``send`` raises is kept
    in :attr:`lost`: the client is gone (ASGI 2.4 says so with an
    ``OSError``; gunicorn's HTTP/2 with errors of its own).
    """

    __slots__ = ("_send", "head_out", "piece", "ready")

    #: The ASGI message types of the head and of each body chunk.
    START: ClassVar[StartType] = "http.response.start"
    BODY: ClassVar[BodyType] = "http.response.body"

    def __init__(
        self,
        send: Send,
        senders: Senders | None = None,
        task: asyncio.Task[Any] | None = None,
        *,
        http2: bool = False,
        ready: Ready | None = None,
    ) -> None:
        TaskResponse.__init__(self, senders, task)  # (not super(): see there)
        self._send = send
        self.piece = H2_PIECE if http2 else PIECE
        #: The server's :data:`~aiopyramid._sending.READY` extension, if any.
        self.ready = ready
        #: Whether a body message (and so the head) went to the server.
        self.head_out = False

    async def _start(self) -> None:
        if not self.head_is_safe():
            await self.refuse(500, "Internal Server Error.")
            self.discard = True
            return
        assert self.status is not None  # checked by head_is_safe
        self.started = True
        start: ResponseStart = {
            "type": self.START,
            "status": int(self.status[:3]),
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in self.headers
            ],
        }
        await self._send(start)

    async def send_body(self, data: bytes, more: bool) -> None:
        """Send one chunk of the body (with the headers first, if not yet sent)."""
        if self.discard:
            return
        if not self.started:
            await self._start()
            if self.discard:
                return
        self.sent += len(data)
        size = len(data)
        if size <= self.piece:
            await self._put(data, -1, more)
            return
        last = size - self.piece
        for start in range(0, size, self.piece):
            await self._put(data, start, more or start < last)

    async def _put(self, data: bytes, start: int, more: bool) -> None:
        """Send ``data`` (``start`` < 0), or its piece from ``start``, when due.

        The piece is cut once the server's connection can take it, so that
        a response waiting for its client holds no copy of its own.
        """
        with self:  # no slot held, under the send deadline (TaskResponse)
            ready = self.ready
            if ready is not None:
                if not self.head_out:
                    # The server sends the head with the first body message
                    # and then waits for the client: with nothing in that
                    # message, a stuck stream holds no piece meanwhile.
                    self.head_out = True
                    await self._send(
                        {"type": self.BODY, "body": b"", "more_body": True}
                    )
                # Every waiting stream wakes when the connection drains, and
                # the first few fill it again: the others wait on.
                while (waiter := ready()) is not None:
                    # Shielded: cancelling this request must not cancel
                    # the connection's future that other streams wait on.
                    await asyncio.shield(waiter)
            if start >= 0:
                data = data[start : start + self.piece]
            body: ResponseBody = {"type": self.BODY, "body": data, "more_body": more}
            await self._send(body)

    async def refuse(self, status: int, text: str) -> None:
        """Send a whole plain-text response of the bridge's own and close."""
        await self.send_body(self._refusal(status, text), False)


#: Seconds after which a request still running starts watching for its
#: client's disconnection (and is cancelled when it comes).
WATCH_AFTER = 0.25


class Watch:
    """Cancels a request's task when its client disconnects mid-request.

    Watching costs a task waiting on ``receive()``; it starts only for
    requests still running :data:`WATCH_AFTER` seconds after they began, which
    short requests (nearly all) never are.  Those are found by one timer per
    loop (:class:`_Sweeper`), not one per request.  ``peer`` is what says the
    client left: the ASGI ``receive`` here; a server of another protocol
    subclasses :meth:`gone` (the RSGI adapter's ``client_disconnect()``).
    """

    __slots__ = ("disconnected", "done", "peer", "sweeper", "task", "watcher")

    def __init__(self, task: asyncio.Task[Any] | None, peer: Any) -> None:
        self.task = task
        self.peer = peer
        self.done = False
        self.disconnected = False
        self.watcher: asyncio.Task[None] | None = None
        self.sweeper: _Sweeper | None = None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Begin: watch from :data:`WATCH_AFTER` seconds on, if still running.

        ``loop`` is the running loop (looked up if not given).  :meth:`stop`
        must follow, as the request ends, whatever became of it.
        """
        self.sweeper = _Sweeper.of(loop or asyncio.get_running_loop())
        self.sweeper.add(self)

    def arm(self) -> None:
        """Start watching, unless the request is already done."""
        if not self.done and self.task is not None:
            self.watcher = asyncio.get_running_loop().create_task(self._watch())

    async def gone(self) -> None:
        """Return once the client has gone (ASGI: its ``http.disconnect``)."""
        receive: Receive = self.peer
        # The body has been read already, so this is the only reader.
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _watch(self) -> None:
        await self.gone()
        if not self.done and self.task is not None:
            self.disconnected = True
            self.task.cancel(DISCONNECT_MESSAGE)  # thrown in as ClientDisconnected

    def stop(self) -> None:
        """The request is over: stop watching."""
        self.done = True
        if self.sweeper is not None:
            self.sweeper.pending.pop(self, None)
            self.sweeper = None
        if self.watcher is not None:
            self.watcher.cancel()


class _Sweeper:
    """Arms the watches of requests that have run :data:`WATCH_AFTER` seconds.

    One per loop, with one timer while requests are pending: starting and
    ending a request costs a dictionary entry, not a timer of its own.  The
    entry is a plain one, taken out by :meth:`Watch.stop`: a weak one cost
    a weak reference and its callback per request, a measurable share of a
    hello's cost on granian (docs/benchmarks.rst).
    """

    _of: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeper]] = (
        weakref.WeakKeyDictionary()
    )
    #: The sweeper found last: a loop serves many requests in a row, and the
    #: weak dictionary's lookup makes a weak reference each time.
    _last: ClassVar[_Sweeper | None] = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: Watches not armed yet, oldest first, with when they started.
        self.pending: dict[Watch, float] = {}
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Sweeper:
        sweeper = cls._last
        if sweeper is not None and sweeper.loop is loop:
            return sweeper
        sweeper = cls._of.get(loop)
        if sweeper is None:
            sweeper = cls._of[loop] = cls(loop)
        cls._last = sweeper
        return sweeper

    def add(self, watch: Watch) -> None:
        self.pending[watch] = self.loop.time()
        if self.timer is None:
            self.timer = self.loop.call_later(WATCH_AFTER, self.sweep)

    def sweep(self) -> None:
        self.timer = None
        due = self.loop.time() - WATCH_AFTER
        for watch, started in list(self.pending.items()):
            if started > due:  # this one and the later ones: next time
                self.timer = self.loop.call_at(started + WATCH_AFTER, self.sweep)
                return
            del self.pending[watch]
            watch.arm()
