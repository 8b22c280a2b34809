"""Received websocket messages waiting for their view, within a budget.

A view that does not read must not make its connection grow: both of our
websocket servers (:mod:`aiopyramid.gunicorn._websocket`,
:mod:`.config._uwsgi_connection`) keep what arrived in an :class:`Inbox`
and stop reading the socket while it is :attr:`~Inbox.full`: 16 messages,
or ``max_bytes`` of them (``aiopyramid.websocket.max_queue_bytes``, 1 MiB
by default), whichever comes first.  The client then waits for TCP.

With permessage-deflate, bytes are not messages: a few KiB inflate to
megabytes (deflate reaches 1:1032).  Parsing a whole read (up to 256 KiB)
at once would inflate up to 256 MiB, on the loop, before the inbox could
say it is full; so compressed bytes are parsed :data:`FEED` at a time,
the inbox checked in between, and what is left waits, unparsed, in the
backlog (one read at most, since reading stops meanwhile).  Inflating
then holds the loop for at most about ``max_bytes`` plus one message.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DEFAULT_MAX_QUEUE_BYTES", "FEED", "Inbox"]

#: The bytes of messages a connection holds for its view, by default.
DEFAULT_MAX_QUEUE_BYTES = 2**20

#: Messages waiting beyond which reading pauses, and at or below which it
#: may resume.
HIGH_WATER = 16
LOW_WATER = 4
#: Bytes of compressed input parsed at a time.
FEED = 4096


class Inbox:
    """Messages for the view (``str`` or ``bytes``) and the bytes not parsed yet.

    ``max_bytes`` bounds the length of the waiting messages in all (``None``:
    only their count is).
    """

    __slots__ = ("_backlog", "_messages", "_queued", "max_bytes")

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        # A list, not a deque: an empty deque takes 600 bytes, and this
        # holds a few messages at most.
        self._messages: list[str | bytes] = []
        #: The length of the waiting messages, in all.
        self._queued = 0
        #: Bytes received and not parsed yet, while the inbox is full.
        self._backlog = bytearray()

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def full(self) -> bool:
        """Whether the view has as many messages waiting as it may."""
        if len(self._messages) >= HIGH_WATER:
            return True
        return self.max_bytes is not None and self._queued >= self.max_bytes

    @property
    def roomy(self) -> bool:
        """Whether, once full, it has room enough again to read more."""
        if len(self._messages) > LOW_WATER:
            return False
        return self.max_bytes is None or self._queued <= self.max_bytes // 4

    @property
    def backlog(self) -> int:
        """How many received bytes wait to be parsed."""
        return len(self._backlog)

    def put(self, messages: list[str | bytes]) -> None:
        """Messages the parser completed."""
        self._messages.extend(messages)
        self._queued += sum(map(len, messages))

    def take(self) -> str | bytes:
        """The oldest message (there must be one)."""
        message = self._messages.pop(0)
        self._queued -= len(message)
        return message

    def feed(
        self, data: bytes, parse: Callable[[bytes], None], inflating: bool
    ) -> bool:
        """Give ``data`` to ``parse`` while there is room; whether all of it went.

        ``parse`` parses bytes and :meth:`put` the messages they complete.
        Without ``inflating`` no message is longer than its bytes: they go
        at once.  What is left waits for :meth:`more`.
        """
        if not self._backlog and (not inflating or len(data) <= FEED):
            parse(data)
            return True
        self._backlog += data
        return self.more(parse)

    def more(self, parse: Callable[[bytes], None]) -> bool:
        """Parse the backlog, :data:`FEED` bytes at a time, while there is room.

        Returns whether the backlog is empty.
        """
        backlog = self._backlog
        while backlog and not self.full:
            piece = bytes(backlog[:FEED])
            del backlog[:FEED]
            parse(piece)
        return not backlog

    def drop_backlog(self) -> None:
        """Forget the bytes not parsed (nothing after a close frame counts)."""
        self._backlog.clear()

    def clear(self) -> None:
        """Drop every message and the backlog (nobody will read them)."""
        self._messages.clear()
        self._queued = 0
        self._backlog.clear()
