"""The ``ws`` of uWSGI websocket views: framing on the request's own socket.

uWSGI 2.0's websocket functions (``websocket_recv*``, ``websocket_send*``)
cannot be trusted with a hostile or merely unusual client: their parser keeps
the fragments of an unfinished message per *process*, so two connections
served by one async worker receive each other's data, and a continuation
frame with nothing to continue or a fragmented ping crashes the worker; it
validates neither reserved bits nor UTF-8, and it cannot tell an empty
message from "nothing yet".  So uWSGI only does the handshake: then this
module takes the connection's socket, lets the ``websockets`` library's
sans-I/O protocol parse and build every frame (validation, fragmentation,
ping/pong, the closing handshake, the size limit), and moves bytes between
the two on the event loop with ``add_reader``/``add_writer``.

Everything here runs in the loop's greenlet, never in the request's: the
request greenlet waits for :meth:`UWSGIWebsocket.serve` to finish and calls
nothing of uWSGI meanwhile.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
from collections.abc import Callable
from typing import Any

try:
    from websockets.frames import CloseCode
    from websockets.protocol import State
except ImportError as error:
    raise ImportError(
        "UWSGIWebsocketMapper frames websocket messages with the websockets "
        "library, which is not installed where uWSGI runs the application. "
        "Install it into the application's virtualenv: "
        "pip install 'websockets>=13' (or aiopyramid's 'uwsgi' extra)."
    ) from error

from .._inbox import Inbox
from .._sansio import Keepalive, MessageAssembler, server_protocol
from ..exceptions import WebsocketClosed
from ..interface import Websocket

__all__ = ["UWSGIWebsocket"]

_READ_SIZE = 65536
#: Bytes waiting for the socket beyond which ``send()`` waits for them to go.
_WRITE_HIGH_WATER = 65536


def _settle_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


class UWSGIWebsocket:
    """One websocket connection served by uWSGI: the ``ws`` a view receives.

    :meth:`recv`, :meth:`send` and :meth:`close` are coroutines; use them with
    ``await`` (or ``yield from`` in legacy generator views).  Made by
    :class:`~aiopyramid.websocket.config.UWSGIWebsocketMapper` after uWSGI's
    handshake, from the connection's file descriptor.
    """

    def __init__(
        self,
        fd: int,
        *,
        use_str: bool = True,
        max_size: int | None = 2**20,
        ping_interval: float | None = None,
        ping_timeout: float = 3.0,
        close_timeout: float = 10.0,
        max_queue_bytes: int | None = 2**20,
        send_timeout: float | None = 30.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._was_blocking = os.get_blocking(fd)
        # The socket object borrows uWSGI's descriptor: detached, never
        # closed, once the conversation is over (uWSGI closes it).
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(False)
        self._protocol = server_protocol(max_size)
        self._assembler = MessageAssembler(self._protocol, text_as_str=use_str)
        self._keepalive = (
            Keepalive(self._protocol, ping_interval, ping_timeout, self._flush_and_wake)
            if ping_interval
            else None
        )
        self._close_timeout = close_timeout
        self._send_timeout = send_timeout
        # Reading pauses while it is full (aiopyramid.websocket._inbox).
        self._inbox = Inbox(max_queue_bytes)
        self._receivers: list[asyncio.Future[None]] = []
        self._out = bytearray()
        self._eof_pending = False
        self._drainers: list[asyncio.Future[None]] = []
        self._reading = False
        self._writing = False
        self._broken = False
        self._eof_received = False
        self._gone: asyncio.Future[None] = self._loop.create_future()
        self.subprotocol: str | None = None
        """The subprotocol chosen in the handshake, if any."""

    @property
    def closed(self) -> bool:
        """Whether the connection is closing or closed (by either side, or broken)."""
        return self._broken or self._protocol.state is not State.OPEN

    @property
    def close_code(self) -> int | None:
        """The client's close code; 1006 if it went without one; ``None`` while open."""
        received = self._protocol.close_rcvd
        if received is not None:
            return received.code
        if self._broken or self._protocol.state is State.CLOSED:
            return CloseCode.ABNORMAL_CLOSURE
        return None

    async def recv(self) -> str | bytes | None:
        """Wait for the next message; ``None`` once the connection is closed.

        Never raises because the peer closed or vanished.  Text frames arrive
        as ``str`` (as UTF-8 ``bytes`` if the mapper's ``use_str`` is false),
        binary frames as ``bytes``.
        """
        inbox = self._inbox
        while not len(inbox):
            if self.closed:
                return None
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._receivers.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._receivers:
                    self._receivers.remove(waiter)
        message = inbox.take()
        if not self._reading and inbox.roomy:
            self._start_reading()
        return message

    async def send(self, message: str | bytes) -> None:
        """Send ``message``: ``str`` as a text frame, ``bytes`` as a binary one.

        Raises :class:`~aiopyramid.websocket.exceptions.WebsocketClosed` if
        the connection is closed, which ends the view like a normal close,
        or if the client takes none of what is waiting for it for the send
        deadline (``aiopyramid.send_timeout``): the connection is then
        given up.
        """
        if self.closed:
            raise WebsocketClosed("the websocket connection is closed")
        if isinstance(message, str):
            self._protocol.send_text(message.encode("utf-8"))
        else:
            self._protocol.send_binary(bytes(message))
        self._flush()
        if len(self._out) > _WRITE_HIGH_WATER:
            await self._drain()
        if self._broken:
            raise WebsocketClosed("the websocket connection is closed")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason``; later calls do nothing."""
        if self.closed:
            return
        self._protocol.send_close(code, reason)
        self._flush()

    async def serve(self, run: Callable[[Websocket], Any]) -> None:
        """Run the view (``run(self)``, awaited if awaitable) and end the connection.

        Closes with 1000 when the view returns (or lets a bare
        :class:`WebsocketClosed` escape), 1011 when it fails; then waits, at
        most the close timeout, for the client to end the TCP connection.
        A failure is raised as :class:`WebsocketClosed` caused by the view's
        exception.
        """
        self._start_reading()
        keepalive = self._keepalive
        if keepalive is not None:
            keepalive.start()
        failure: BaseException | None = None
        try:
            try:
                result = run(self)
                if inspect.isawaitable(result):
                    await result
            except WebsocketClosed as closed:  # sent on a closed connection
                failure = closed.__cause__
            except Exception as error:  # reported below, after closing
                failure = error
            if keepalive is not None:
                keepalive.stop()
            # Messages nobody will read: drop them, and read again (reading
            # pauses while they pile up) to see the client's close frame.
            self._inbox.clear()
            self._start_reading()
            code = (
                CloseCode.NORMAL_CLOSURE
                if failure is None
                else CloseCode.INTERNAL_ERROR
            )
            await self.close(code)
            # The client answers our close frame and ends the TCP connection;
            # one that never does is left behind after the close timeout.
            await asyncio.wait([self._gone], timeout=self._close_timeout)
        finally:
            if keepalive is not None:
                keepalive.stop()
            self._release()
        if failure is not None:
            raise WebsocketClosed("the websocket view failed") from failure

    # Reading: the loop calls _read whenever the socket has bytes.

    def _start_reading(self) -> None:
        if not (self._reading or self._broken or self._eof_received):
            self._loop.add_reader(self._fd, self._read)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _read(self) -> None:
        try:
            data = self._sock.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._lose()
            return
        if data:
            # No permessage-deflate here (uWSGI's handshake offers none):
            # the messages of a read are no longer than its bytes.
            self._inbox.feed(data, self._parse, False)
        else:
            self._eof_received = True
            self._stop_reading()
            self._protocol.receive_eof()
        self._flush()
        if self._protocol.state is State.CLOSED:
            self._end()
        elif self._inbox.full:
            self._stop_reading()
        _settle_all(self._receivers)

    def _parse(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        self._inbox.put(
            self._assembler.take(self._protocol.events_received(), self._pong)
        )

    def _pong(self, payload: bytes) -> None:
        if self._keepalive is not None:
            self._keepalive.pong(payload)

    # Writing: straight away, and from the loop when the socket is full.

    def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data:
                self._out += data
            else:  # the protocol's end of stream: half-close once written
                self._eof_pending = True
        self._write()

    def _write(self) -> None:
        while self._out and not self._broken:
            try:
                # MSG_NOSIGNAL: a vanished client must not raise SIGPIPE, whose
                # uWSGI handler crashes the worker outside a request greenlet.
                sent = self._sock.send(self._out, socket.MSG_NOSIGNAL)
            except BlockingIOError:
                if not self._writing:
                    self._loop.add_writer(self._fd, self._write)
                    self._writing = True
                return
            except OSError:
                self._lose()
                return
            del self._out[:sent]
        self._stop_writing()
        if self._eof_pending and not self._broken:
            self._eof_pending = False
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._lose()
        _settle_all(self._drainers)

    def _stop_writing(self) -> None:
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False

    async def _drain(self) -> None:
        """Wait for the socket to take what waits; give up past the send deadline."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drainers.append(waiter)
        try:
            await asyncio.wait_for(waiter, self._send_timeout)
        except asyncio.TimeoutError:
            # A client that reads nothing would hold this view, and what
            # waits for it, for ever.
            self._lose()

    # The end of the connection.

    def _flush_and_wake(self) -> None:
        """Send a keepalive ping (or the failure after a silent client): a
        failure closes the connection, which ``recv()`` must hear of."""
        self._flush()
        _settle_all(self._receivers)

    def _lose(self) -> None:
        """The network failed: stop all I/O and wake everybody."""
        self._broken = True
        self._out.clear()
        self._stop_reading()
        self._stop_writing()
        self._end()
        _settle_all(self._receivers)
        _settle_all(self._drainers)

    def _end(self) -> None:
        if not self._gone.done():
            self._gone.set_result(None)

    def _release(self) -> None:
        """Give the socket back to uWSGI, which closes it when the request ends."""
        self._stop_reading()
        self._stop_writing()
        self._end()
        _settle_all(self._receivers)
        _settle_all(self._drainers)
        self._broken = True  # nothing more goes through this object
        os.set_blocking(self._fd, self._was_blocking)
        self._sock.detach()
