"""Handing a response to a client that may not read: in pieces, with a deadline.

A client that stops reading must cost a bounded number of bytes, for a
bounded time, and no request slot:

* a body is handed to the server in pieces of at most :data:`PIECE` bytes
  (:data:`H2_PIECE` on HTTP/2), each once the server has taken the last: a
  server buffers one piece of a stuck response beyond its transport's
  limit, not the view's whole chunk (gunicorn's HTTP/2 path even copies the
  rest of a chunk at every frame it cuts);
* :class:`Senders` gives a response's request slot back while it waits for
  its client (waiting is not work: ``max_concurrency`` bounds what the
  application does at once), and cancels a request whose client has taken
  nothing for ``aiopyramid.send_timeout`` seconds.

Deadlines are kept by one timer per :class:`Senders`, not one per send, as
:class:`aiopyramid._asgi_response.Watch` watches disconnections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Protocol

__all__ = [
    "H2_PIECE",
    "PIECE",
    "READY",
    "SEND_TIMEOUT",
    "Ready",
    "Senders",
    "pieces",
]

log = logging.getLogger("aiopyramid.asgi")

#: Seconds a client may take no bytes of what is sent to it, by default
#: (:data:`aiopyramid.asgi.DEFAULT_SEND_TIMEOUT` says why).
SEND_TIMEOUT = 30.0
#: The largest piece of a body handed to a server at once: gunicorn's write
#: buffer limit, so a stuck connection holds at most about twice this.
PIECE = 65536
#: The same on HTTP/2: one DATA frame at the protocol's default frame size,
#: which gunicorn sends without copying it.
H2_PIECE = 16384
#: The ASGI scope extension through which a server (the gunicorn worker, on
#: HTTP/2) says when a connection can take more: a callable returning
#: ``None`` while it can, else a future resolved once it can again (or is
#: gone).  The bridge waits on it before it cuts and sends each piece, so
#: the streams of a connection whose client reads nothing add nothing to
#: its buffers and hold no piece while they wait.
READY = "aiopyramid.send.ready"

#: What a server offers under :data:`READY`.
Ready = Callable[[], "asyncio.Future[None] | None"]


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in slices of at most ``size`` bytes (``data`` itself if small)."""
    if len(data) <= size:
        yield data
        return
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Sender(Protocol):
    """A response whose sends :class:`Senders` watches."""

    def time_out(self) -> None:
        """The client took nothing for the deadline: end the request."""


class Slots(Protocol):
    """What counts the requests the application is working on."""

    active: int


class Senders:
    """The responses of one server waiting for their clients, and their deadlines.

    :meth:`begin` before handing bytes to the server and :meth:`end` once it
    has taken them.  In between, the request does not count in
    ``slots.active``; if ``timeout`` seconds pass first, the response's
    :meth:`~Sender.time_out` is called.  ``timeout`` ``None``: no deadline.
    """

    __slots__ = ("_loop", "_timer", "_waiting", "slots", "timeout")

    def __init__(self, slots: Slots, timeout: float | None) -> None:
        self.slots = slots
        self.timeout = timeout
        #: Waiting responses and when they time out, the earliest first
        #: (every deadline is ``timeout`` after its insertion).
        self._waiting: dict[Sender, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self, sender: Sender) -> None:
        """``sender`` hands bytes to its client: it holds no slot until :meth:`end`."""
        self.slots.active -= 1
        timeout = self.timeout
        if timeout is None:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._waiting[sender] = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._sweep)

    def end(self, sender: Sender) -> None:
        """The server took the bytes (or gave up): the request counts again."""
        self.slots.active += 1
        self._waiting.pop(sender, None)

    def _sweep(self) -> None:
        self._timer = None
        assert self._loop is not None
        now = self._loop.time()
        for sender, deadline in list(self._waiting.items()):
            if deadline > now:  # this one and the later ones: next time
                self._timer = self._loop.call_at(deadline, self._sweep)
                return
            del self._waiting[sender]
            log.info(
                "A client took none of its response for %ss "
                "(aiopyramid.send_timeout): ending the request",
                self.timeout,
            )
            sender.time_out()
