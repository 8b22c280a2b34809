"""What both of our websocket servers share on top of ``websockets``' sans-I/O core.

The ``websockets`` library's :class:`~websockets.protocol.Protocol` parses and
builds frames (validation, fragmentation order, control frames, the closing
handshake, the size limit, compression when negotiated) but hands over
*frames*: turning them into messages, validating text as UTF-8 as it arrives,
and sending keepalive pings are left to the I/O layer around it.  Two I/O
layers use it here, uWSGI's socket (:mod:`.config._uwsgi_connection`) and
gunicorn's transport (:mod:`aiopyramid.gunicorn._websocket`); this module is
what they have in common.  Nothing here does I/O: ``flush`` callbacks do.
"""

from __future__ import annotations

import asyncio
import codecs
import os
from collections.abc import Callable, Iterable
from typing import Any

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Protocol, Side, State

__all__ = ["Keepalive", "MessageAssembler", "server_protocol"]


class _ServerProtocol(Protocol):
    """websockets' protocol, accepting a close in the middle of a message.

    RFC 6455 section 5.4 lets control frames come between the fragments of
    a message, and a close frame is one: the connection then ends normally,
    the unfinished message discarded.  websockets fails it with 1002
    ("incomplete fragmented message"; Autobahn|Testsuite case 7.1.5, which
    gunicorn's and hypercorn's implementations pass).  ``recv_frame`` and
    ``current_size`` (the size of the message in progress, ``None``
    between messages) are websockets' own names, not a documented API:
    ``tests/websocket/test_sansio.py`` checks both, and the raw-frame tests
    of both servers check this case.
    """

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE and self.current_size is not None:
            self.current_size = None
        super().recv_frame(frame)


def server_protocol(max_size: int | None) -> Protocol:
    """The sans-I/O protocol of a server connection whose handshake is done."""
    return _ServerProtocol(Side.SERVER, state=State.OPEN, max_size=max_size)


class MessageAssembler:
    """Whole messages out of the frames a :class:`Protocol` parsed.

    Text is decoded frame by frame, so invalid UTF-8 fails the connection
    (``1007``) as soon as it arrives rather than when the message ends, as
    RFC 6455 section 8.1 asks.  Text messages come out as ``str`` (as their
    UTF-8 ``bytes`` when ``text_as_str`` is false), binary ones as ``bytes``.
    """

    __slots__ = ("_decoder", "_parts", "_protocol", "_text_as_str")

    def __init__(self, protocol: Protocol, *, text_as_str: bool = True) -> None:
        self._protocol = protocol
        self._text_as_str = text_as_str
        self._parts: list[Any] = []
        self._decoder: codecs.IncrementalDecoder | None = None

    def take(
        self, frames: Iterable[Any], on_pong: Callable[[bytes], None]
    ) -> list[str | bytes]:
        """The messages ``frames`` complete; pong payloads go to ``on_pong``.

        Pings and close frames are skipped: the protocol has answered them.
        """
        messages: list[str | bytes] = []
        for frame in frames:
            opcode = frame.opcode
            if opcode is Opcode.PONG:
                on_pong(bytes(frame.data))
                continue
            if opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                continue
            if opcode is not Opcode.CONT:  # the protocol checked the order
                self._parts = []
                text = opcode is Opcode.TEXT
                self._decoder = (
                    codecs.getincrementaldecoder("utf-8")() if text else None
                )
            data = bytes(frame.data)
            if self._decoder is None:
                self._parts.append(data)
            else:
                try:
                    decoded = self._decoder.decode(data, frame.fin)
                except UnicodeDecodeError as error:
                    self._parts = []
                    self._protocol.fail(
                        CloseCode.INVALID_DATA,
                        f"{error.reason} at position {error.start}",
                    )
                    return messages  # nothing after a failure counts
                self._parts.append(decoded if self._text_as_str else data)
            if frame.fin:
                parts, self._parts = self._parts, []
                as_str = self._decoder is not None and self._text_as_str
                messages.append("".join(parts) if as_str else b"".join(parts))
        return messages


class Keepalive:
    """Ping every ``interval`` seconds; fail with 1011 without a pong in ``timeout``.

    Timers on the loop rather than a task per connection: an idle connection
    then costs one timer handle.  ``flush`` sends what the protocol has to
    send (the ping, or the close frame of a failure); :meth:`pong` is given
    every pong payload that arrives.  ``timeout`` ``None`` (or ``0``) never
    fails the connection.
    """

    __slots__ = (
        "_flush",
        "_interval",
        "_loop",
        "_pending",
        "_protocol",
        "_timeout",
        "_timer",
    )

    def __init__(
        self,
        protocol: Protocol,
        interval: float,
        timeout: float | None,
        flush: Callable[[], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._protocol = protocol
        self._interval = interval
        self._timeout = timeout
        self._flush = flush
        self._pending: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Send the first ping after one interval."""
        self._timer = self._loop.call_later(self._interval, self._ping)

    def stop(self) -> None:
        """Send no more pings."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = None

    def pong(self, payload: bytes) -> None:
        """A pong arrived: if it answers our ping, ping again in an interval."""
        if self._pending is not None and payload == self._pending:
            self.stop()
            self.start()

    def _ping(self) -> None:
        self._timer = None
        if self._protocol.state is not State.OPEN:
            return
        self._pending = os.urandom(4)
        self._protocol.send_ping(self._pending)
        self._flush()
        if self._timeout:
            self._timer = self._loop.call_later(self._timeout, self._timed_out)
        else:
            self.start()

    def _timed_out(self) -> None:
        self._timer = None
        self._pending = None
        if self._protocol.state is State.OPEN:
            self._protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
