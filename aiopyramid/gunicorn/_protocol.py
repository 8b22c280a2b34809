"""gunicorn's connection protocol, with our HTTP/1 path, deadlines and websockets.

gunicorn 27's ASGI worker (``gunicorn.asgi.protocol.ASGIProtocol``) offers
no public hook for what this subclass changes, so it overrides private
methods; ``tests/gunicorn/test_hooks.py`` checks that each name below still
exists with the signature used here, and the worker's tests (pings that
arrive, a trickled head that is cut, keep-alive, raw-socket framing) fail if
one stops being called.  The names are:

* ``_serve_http_request(request, sockname, peername)``, which gunicorn's
  connection loop calls once per plain HTTP/1 request and whose answer says
  whether to keep the connection: served by :mod:`._http1` (with
  ``_will_close``, ``_safe_write``, ``_flow_control``, ``_body_receiver``,
  ``_pre_request``/``_post_request`` and ``_root_path``);
* ``_on_headers_complete()``, the parser's callback when a request head is
  complete: it ends the head deadline;
* ``_arm_keepalive_timer()``/``_cancel_keepalive_timer()`` and
  ``_keepalive_timeout()``, what gunicorn calls around an idle kept-alive
  connection (the last closes it and wakes its task): one timer per
  connection follows a deadline, and the head deadline ends the same way;
  ``_request_ready``, the event the connection's task waits on, is set when
  the connection is lost so that the task ends at once;
* ``_send_error_response`` and ``_close_transport``: after an error answer
  the close lingers, so that a client still sending can read it, and a
  closed connection that does not end is reset (``_conn_lost_handled``
  says whether it has);
* ``pause_writing``/``resume_writing`` (the transport's flow control, which
  gunicorn forwards to ``_flow_control`` or, on HTTP/2, to
  ``_h2_writer_protocol``) and ``_build_http2_scope``: the send deadline
  and the pacing of HTTP/2 streams (:mod:`._http2`);
* ``_callback_parser``, set on HTTP/1 connections only: HTTP/2, uWSGI and
  the PROXY-protocol-less h2c sniffing have deadlines of their own; and
  ``_check_h1c_protocol_available``, asked once here so that gunicorn's C
  parser is used (see below);
* ``_handle_websocket(request, sockname, peername)``, which serves an
  upgraded connection (dropping ``_body_receiver``, which ``connection_lost``
  tolerates as ``None``), with ``_build_websocket_scope`` (same arguments),
  ``_flow_control.drain`` (waits while the transport is full; released by
  ``resume_writing`` when the connection is lost) and
  ``_websocket`` (``data_received`` and ``connection_lost`` hand it the
  bytes and the end of the connection through ``feed_data``/``feed_eof``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import socket
import struct
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol

from .._access_log import log_environ
from .._asgi_websocket import BUSY_STATUS, RETRY_AFTER
from ._denial import EXTENSION
from ._http1 import DirectHTTP
from ._http2 import HTTP2Pacing

__all__ = ["Protocol"]

#: ``SO_LINGER`` on, for 0 seconds: closing resets the connection.
_NO_LINGER = struct.pack("ii", 1, 0)


def _handshake_error(headers: list[tuple[str, str]]) -> tuple[int, str] | None:
    """RFC 6455 section 4.2.1: version 13 and a 16-byte key, or what to answer."""
    values = dict(headers)
    if values.get("SEC-WEBSOCKET-VERSION", "").strip() != "13":
        return 426, "Upgrade Required"
    try:
        key = base64.b64decode(values.get("SEC-WEBSOCKET-KEY", ""), validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 16:
        return 400, "Bad Request"
    return None


# gunicorn caches whether its C parser (gunicorn_h1c) is there on the class
# it asks, but reads the answer back from ASGIProtocol: asked through a
# subclass, the answer never reaches ASGIProtocol and every connection falls
# back to the Python parser, slower by half.  Asking ASGIProtocol itself,
# once, puts the answer where gunicorn reads it.
ASGIProtocol._check_h1c_protocol_available()


class Protocol(DirectHTTP, HTTP2Pacing, ASGIProtocol):  # type: ignore[misc]
    """One connection to :class:`~aiopyramid.gunicorn.worker.AsyncGunicornWorker`.

    Plain HTTP/1 requests are served by :class:`._http1.DirectHTTP` (through
    ``_serve_http_request``, which gunicorn's connection loop calls once per
    request); websockets by :mod:`._websocket`; HTTP/2 and gunicorn's uWSGI
    protocol by gunicorn's ASGI code and the ASGI bridge.
    """

    _head_timer: asyncio.TimerHandle | None = None
    # Set by gunicorn's ASGIProtocol (untyped): declared for the checker.
    _closed: bool
    _keepalive_handle: asyncio.TimerHandle | None
    _request_ready: asyncio.Event | None

    def connection_made(self, transport: Any) -> None:
        """Start the connection's head deadline (HTTP/1 connections only)."""
        super().connection_made(transport)
        seconds = self.worker.head_timeout
        if seconds and self._callback_parser is not None:
            # A slowloris client trickles its first request head forever:
            # gunicorn 27 bounds only the heads of later requests (its
            # keepalive timer), so the first one gets this deadline.
            self._head_timer = self.worker.loop.call_later(
                seconds, self._head_timed_out
            )

    #: When an idle kept-alive connection is closed (loop time; ``None``
    #: while a request is under way).
    _idle_deadline: float | None = None
    #: Seconds a connection closed after an error answer goes on reading,
    #: and dropping, what its client still sends.
    linger = 2.0
    #: Whether the next close lingers (an error answer was sent).
    _linger_on_close = False
    #: The end of a lingering close, while it lasts.
    _linger_timer: asyncio.TimerHandle | None = None
    #: Seconds a closed connection may take to end before it is aborted.
    close_timeout = 2.0
    #: Aborts a closed connection that does not end (see :meth:`_abort_later`).
    _abort_timer: asyncio.TimerHandle | None = None
    _abort_waited = 0.0
    #: What the transport still held for its client at the last look.
    _abort_buffered = float("inf")
    _conn_lost_handled: bool
    _flow_control: Any

    def data_received(self, data: bytes) -> None:
        """Hand bytes to gunicorn, or drop them during a lingering close."""
        if self._linger_timer is None:
            super().data_received(data)

    def _send_error_response(
        self, status: int, message: str, extra_headers: Any = ()
    ) -> None:
        self._linger_on_close = True
        super()._send_error_response(status, message, extra_headers)

    def _linger_close(self) -> None:
        """Close; after an error answer, linger so the client can read it.

        A client still sending (an endless head, a body over the limit) would
        otherwise get a reset in answer to its next bytes, and a reset makes
        its system drop the answer unread.  So the write side is shut (the
        answer, then FIN) and what the client sends meanwhile is read and
        dropped, for :attr:`linger` seconds at most.
        """
        transport = self.transport
        if (
            not self._linger_on_close
            or self._closed
            or transport is None
            or not transport.can_write_eof()
        ):
            super()._close_transport()
            return
        self._closed = True
        try:
            transport.write_eof()
            transport.resume_reading()
        except Exception:  # already gone: nothing to linger for
            transport.close()
            return
        self._linger_timer = self.worker.loop.call_later(self.linger, transport.close)
        self._abort_later(self.linger + self.close_timeout)

    def _abort_later(self, seconds: float) -> None:
        """Abort the connection if it is not gone in ``seconds`` (once closed).

        ``close()`` waits for the client to take what is still buffered,
        and on TLS for the client's goodbye, reading and decrypting what it
        sends meanwhile: uvloop for 30 s, for ever for a client that never
        reads.  After :attr:`close_timeout` the connection is reset instead,
        unless the client is still taking what is buffered for it, which
        then has until the send deadline.
        """
        if self._abort_timer is None:
            self._abort_timer = self.worker.loop.call_later(seconds, self._abort)

    def _abort(self) -> None:
        self._abort_timer = None
        transport = self.transport
        if transport is None or self._conn_lost_handled:
            return
        buffered = transport.get_write_buffer_size()
        if buffered and buffered < self._abort_buffered:
            # Bytes still on their way to a client that reads (fewer than
            # last time): they get the send deadline, as any response.
            self._abort_buffered = buffered
            waited = self._abort_waited = self._abort_waited + self.close_timeout
            timeout = self.worker.asgi.send_timeout
            if timeout is None or waited < timeout:  # (None: for ever)
                self._abort_later(self.close_timeout)
                return
        self.log.debug("Connection not closed in time: aborting it")
        self._reset()

    def _close_transport(self) -> None:
        """Close, lingering after an error answer; abort if it lasts."""
        self._linger_close()
        if self._closed:  # (a lingering close has its own, later, abort)
            self._abort_later(self.close_timeout)

    async def drain(self) -> None:
        """Wait while the client reads nothing; abort it past the send deadline.

        The deadline (``aiopyramid.send_timeout``) is a timer that exists
        only while the transport is full, which for clients that read is
        rare and short.  Returns when the client reads, or when the
        connection is lost (aborted by the deadline, or gone).
        """
        flow = self._flow_control
        if flow is None or not flow.write_paused or self._conn_lost_handled:
            return
        timeout = self.worker.asgi.send_timeout
        timer = None
        if timeout is not None:
            timer = self.worker.loop.call_later(timeout, self._send_timed_out)
        try:
            await flow.drain()
        finally:
            if timer is not None:
                timer.cancel()

    def _send_timed_out(self) -> None:
        self.log.info(
            "A client read nothing for %ss (aiopyramid.send_timeout): "
            "closing its connection",
            self.worker.asgi.send_timeout,
        )
        self._reset()

    def _reset(self) -> None:
        """End the connection now, with what is still buffered for its client.

        ``abort()`` drops the transport's buffer, but a socket closed with
        bytes in its kernel send queue lingers (up to several MB of the
        kernel's memory) until they are sent, which a client that reads
        nothing never lets happen: a zero linger time makes the close a
        reset, which frees them at once and tells the client.
        """
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
        transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadlines; cancel a request whose client left."""
        self._end_head_deadline()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self._flow_control is not None:
            # Whoever waits for the client to read (a websocket's send)
            # must learn that it never will: gunicorn leaves them waiting.
            self._flow_control.resume_writing()
        self._wake_streams()  # the same for HTTP/2 streams
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None
        self._client_gone()
        super().connection_lost(exc)
        # gunicorn leaves the connection's task waiting for a next request
        # until its disconnect grace period cancels it (3 s): wake it, as
        # gunicorn's own keep-alive timeout does, so that it ends now.
        if self._request_ready is not None:
            self._request_ready.set()

    def _arm_keepalive_timer(self) -> None:
        """Start the keep-alive deadline, reusing the connection's timer.

        gunicorn makes a timer for every request on a kept-alive connection
        and cancels it when the next request comes; here one timer per
        connection follows a deadline field, moving itself when it fires
        early and lapsing while a request is under way.
        """
        if self._keepalive <= 0:
            return
        loop = self.worker.loop
        self._idle_deadline = loop.time() + self._keepalive
        if self._keepalive_handle is None:
            self._keepalive_handle = loop.call_at(
                self._idle_deadline, self._keepalive_due
            )

    def _cancel_keepalive_timer(self) -> None:
        self._idle_deadline = None

    def _keepalive_due(self) -> None:
        self._keepalive_handle = None
        deadline = self._idle_deadline
        if deadline is None or self._closed:
            return
        loop = self.worker.loop
        if loop.time() < deadline:
            self._keepalive_handle = loop.call_at(deadline, self._keepalive_due)
        elif self._request_ready is None or not self._request_ready.is_set():
            self._keepalive_timeout()
        # else: a whole request head came in the same turn of the loop (a
        # loop held past the deadline, or the timer due just then), and the
        # task that ends the deadline has not run yet: that request is
        # served; closing would leave its client with no answer at all.

    def _on_headers_complete(self) -> Any:
        self._end_head_deadline()
        return super()._on_headers_complete()

    def _end_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self.log.info(
            "Request head not received in %ss: closing the connection",
            self.worker.head_timeout,
        )
        self._keepalive_timeout()

    async def _handle_websocket(
        self, request: Any, sockname: Any, peername: Any
    ) -> None:
        """Serve an upgraded connection with our :class:`._websocket.Websocket`."""
        from ._websocket import Websocket

        # From now on the bytes are frames, for the websocket (as in gunicorn),
        # and no HTTP body comes: the request's body receiver (600 bytes of
        # empty deque) can go, which keeps an idle connection small.
        self._callback_parser = None
        self._body_receiver = None
        error = _handshake_error(request.headers)
        if error is not None:
            status, reason = error
            extra = (("Sec-WebSocket-Version", "13"),) if status == 426 else ()
            self._send_error_response(status, reason, extra)
            self._close_transport()
            return
        scope = self._build_websocket_scope(request, sockname, peername)
        bridge = self.worker.asgi
        if bridge.max_websockets is not None and (
            bridge.websockets >= bridge.max_websockets
        ):
            # Websockets have a budget of their own, apart from requests'
            # (aiopyramid.websocket.max_connections): past it, the answer of
            # every budget of the worker's.
            self._send_error_response(
                503,
                "Service Unavailable: too many websockets.",
                (("Retry-After", RETRY_AFTER),),
            )
            self._close_transport()
            self.worker.log_websocket(log_environ(scope), BUSY_STATUS, [], 0, 0.0)
            return
        # A view's refusal goes out whole (status, headers, body), as under
        # uvicorn and hypercorn: gunicorn's scope offers no extension.
        scope.setdefault("extensions", {})[EXTENSION] = {}
        websocket = Websocket(
            self.transport,
            scope,
            self.app,
            self.log,
            settings=self.worker.websocket_settings,
            drain=self.drain,
        )
        self._websocket = websocket
        await websocket.run()
