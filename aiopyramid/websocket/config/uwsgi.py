"""Websocket views served by uWSGI's own websocket support.

Under uWSGI's asyncio plugin every request runs in a greenlet that uWSGI
made, and uWSGI's ``websocket_*`` functions find the request they act on
through the greenlet that calls them.  The view's coroutine, however, runs as
a task on the event loop, in the loop's greenlet.  So the request greenlet
stays behind as the connection's *agent*: it parks itself, and each call that
needs uWSGI (receive without blocking, send) is switched into it, runs there,
and reports back through a future.  Waiting for a message never blocks the
loop: the task waits for the connection's socket to turn readable with
``loop.add_reader``, then asks the agent to read.

uWSGI hands every message over as ``bytes``, without saying whether it was a
text or a binary frame: by default a message that decodes as UTF-8 is handed
to the view as ``str`` (set :attr:`UWSGIWebsocketMapper.use_str` to ``False``
to keep ``bytes``).  uWSGI also drops empty messages and has no function to
send a close frame; :meth:`UWSGIWebsocket.close` writes one itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import greenlet

from ..exceptions import WebsocketClosed
from ._base import WebsocketMapperBase, not_a_websocket

__all__ = ["UWSGIWebsocket", "UWSGIWebsocketMapper"]


def _import_uwsgi() -> Any:
    try:
        import uwsgi
    except ImportError:
        raise ImportError(
            "UWSGIWebsocketMapper serves websockets through uWSGI's own API, and "
            "the uwsgi module exists only inside a uWSGI server. Run the "
            "application under uWSGI with its asyncio and greenlet plugins "
            "(Debian: apt-get install uwsgi-plugin-python3 "
            "uwsgi-plugin-asyncio-python3 uwsgi-plugin-greenlet-python3), or map "
            "the view with aiopyramid.websocket.config.WebsocketMapper for "
            "gunicorn and ASGI servers."
        ) from None
    return uwsgi


class _Call:
    """A function for the agent greenlet to call, and the future it settles."""

    __slots__ = ("args", "func", "future")

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
    ) -> None:
        self.func = func
        self.args = args
        self.future = future

    def run(self) -> None:
        try:
            result = self.func(*self.args)
        except BaseException as exc:  # handed over to the awaiting task
            if not self.future.done():
                self.future.set_exception(exc)
        else:
            if not self.future.done():
                self.future.set_result(result)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class UWSGIWebsocket:
    """One websocket connection served by uWSGI: the ``ws`` a view receives.

    :meth:`recv`, :meth:`send` and :meth:`close` are coroutines; use them with
    ``await`` (or ``yield from`` in legacy generator views).  Built by
    :class:`UWSGIWebsocketMapper` in the request's greenlet, after the
    handshake.
    """

    def __init__(self, uwsgi: Any, environ: dict[str, Any], use_str: bool) -> None:
        self._uwsgi = uwsgi
        self._agent = greenlet.getcurrent()
        self._loop = asyncio.get_running_loop()
        self._fd: int = uwsgi.connection_fd()
        self._use_str = use_str
        # A close frame is written on the raw socket, which is only right
        # when uWSGI itself does not wrap it in TLS.
        self._raw_close = environ.get("wsgi.url_scheme") != "https"
        self._calls = asyncio.Lock()
        self._receiving = asyncio.Lock()
        self._readable: asyncio.Future[None] | None = None
        self._busy = False
        self._served = False
        self.closed = False
        """Whether the connection has closed (either side, or a network error)."""
        self.subprotocol: str | None = None
        """The subprotocol chosen in the handshake, if any."""

    async def recv(self) -> str | bytes | None:
        """Wait for the next message; ``None`` once the connection is closed.

        Never raises because the peer closed or vanished.  Messages come as
        ``str`` where they decode as UTF-8 (unless the mapper's ``use_str`` is
        false), else as ``bytes``.
        """
        async with self._receiving:
            while not self.closed:
                try:
                    data = await self._call(self._uwsgi.websocket_recv_nb)
                except OSError:
                    # uWSGI's way to say: the peer closed (uWSGI has answered
                    # its close frame already), or the connection broke.
                    self._mark_closed()
                    return None
                if data:
                    return self._decode(bytes(data))
                # Nothing buffered: sleep until the socket has bytes for us,
                # letting the loop serve everybody else meanwhile.
                await self._wait_readable()
            return None

    async def send(self, message: str | bytes) -> None:
        """Send ``message``: ``str`` as a text frame, ``bytes`` as a binary one.

        Raises :class:`~aiopyramid.websocket.exceptions.WebsocketClosed` if
        the connection is closed, which ends the view like a normal close.
        """
        if isinstance(message, str):
            func, data = self._uwsgi.websocket_send, message.encode("utf-8")
        else:
            func, data = self._uwsgi.websocket_send_binary, bytes(message)
        if not self.closed:
            try:
                await self._call(func, data)
                return
            except OSError:
                self._mark_closed()
        raise WebsocketClosed("the websocket connection is closed")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason``; later calls do nothing."""
        if self.closed:
            return
        self._mark_closed()
        async with self._calls:
            self._write_close(code, reason)

    def _decode(self, data: bytes) -> str | bytes:
        if self._use_str:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return data

    async def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` in the agent greenlet and return its result."""
        async with self._calls:
            future: asyncio.Future[Any] = self._loop.create_future()
            # Into the agent, parked in _serve: uWSGI finds the request from
            # the current greenlet.  Control comes back here when the call is
            # done, or earlier if uWSGI parks the agent to wait for the socket
            # (its own loop callbacks resume it then): the future says when.
            self._agent.switch(_Call(func, args, future))
            return await future

    async def _wait_readable(self) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        self._readable = future
        self._loop.add_reader(self._fd, _settle, future)
        try:
            await future
        finally:
            self._readable = None
            self._loop.remove_reader(self._fd)

    def _mark_closed(self) -> None:
        self.closed = True
        if self._readable is not None:
            _settle(self._readable)

    def _write_close(self, code: int, reason: str) -> None:
        if not self._raw_close:
            return
        payload = code.to_bytes(2, "big") + reason.encode("utf-8")[:123]
        frame = bytes((0x88, len(payload))) + payload
        # Never raise SIGPIPE: uWSGI's handler looks for the request of the
        # current greenlet, and crashes the worker in the loop's greenlet.
        # A socket that is gone, or has no room, gets no frame: the TCP close
        # that follows the end of the request tells the peer all the same.
        with (
            contextlib.suppress(OSError),
            socket.socket(fileno=os.dup(self._fd)) as sock,
        ):
            sock.send(frame, socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)

    def _serve(self, run: Callable[[UWSGIWebsocket], Any]) -> None:
        """Run the view's coroutine on the loop and serve its calls until it ends.

        Runs in the request greenlet (the agent) and ends by raising
        :class:`WebsocketClosed`, with the view's exception as its cause if
        the view failed.
        """
        task = self._loop.create_task(
            self._session(run), context=contextvars.copy_context()
        )
        task.add_done_callback(self._wake)
        loop_greenlet = self._agent.parent
        assert loop_greenlet is not None
        while not task.done():
            # Park in the loop's greenlet.  What wakes us: a _Call from the
            # view's task, or _wake once the task is done (anything else, such
            # as a stray resumption by uWSGI, just parks us again).
            call = loop_greenlet.switch()
            if isinstance(call, _Call):
                self._busy = True
                try:
                    call.run()
                finally:
                    self._busy = False
        self._served = True
        if not self.closed:
            failed = task.cancelled() or task.exception() is not None
            self._mark_closed()
            self._write_close(1011 if failed else 1000, "")
        if task.cancelled():
            raise WebsocketClosed("the websocket view was cancelled")
        error = task.exception()
        if error is None or (
            isinstance(error, WebsocketClosed) and error.__cause__ is None
        ):
            raise WebsocketClosed("the websocket connection is closed")
        raise WebsocketClosed("the websocket view failed") from error

    def _wake(self, task: asyncio.Future[None]) -> None:
        # A done callback, in the loop's greenlet.  While the agent runs a
        # call (uWSGI may have parked it for the socket) it must not be
        # switched into: it checks the task itself once the call is done.
        if not (self._busy or self._served or self._agent.dead):
            self._agent.switch()

    async def _session(self, run: Callable[[UWSGIWebsocket], Any]) -> None:
        result = run(self)
        if inspect.isawaitable(result):
            await result


class UWSGIWebsocketMapper(WebsocketMapperBase):
    """Map websocket views for uWSGI's asyncio plugin and its websocket API.

    A view is a function (``async def``, plain, or a legacy generator using
    ``yield from``) that takes the connection, ``view(ws)``, or a class such
    as a :class:`~aiopyramid.websocket.view.WebsocketConnectionView`
    subclass, made with ``(context, request)`` and then called with ``ws``.
    The upgrade request goes through Pyramid like any other (routes,
    predicates, security, tweens); a request without websocket headers gets
    400.  When the view ends, the request's greenlet ends with
    :class:`~aiopyramid.websocket.exceptions.WebsocketClosed`: wrap the
    application in :func:`~aiopyramid.websocket.helpers.ignore_websocket_closed`
    to keep that out of uWSGI's log.
    """

    #: Hand messages that decode as UTF-8 to views as ``str`` (uWSGI does not
    #: tell text frames from binary ones).  ``False`` keeps ``bytes``.
    use_str: ClassVar[bool] = True

    @classmethod
    def options(
        cls,
        *,
        use_str: bool | None = None,
        subprotocols: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
    ) -> type[UWSGIWebsocketMapper]:
        """Return a subclass with these options, for ``view_config(mapper=...)``."""
        return cls.with_options(
            use_str=use_str,
            subprotocols=subprotocols,
            allowed_origins=allowed_origins,
        )

    def __call__(self, view: Any) -> Callable[[Any, Any], Any]:
        """Map ``view`` into a ``(context, request)`` callable."""
        target = self.view_target(view)
        use_str = self.use_str

        def uwsgi_websocket_view(context: Any, request: Any) -> Any:
            if "HTTP_SEC_WEBSOCKET_KEY" not in request.environ:
                return not_a_websocket()
            refusal = self.refuse_origin(request)
            if refusal is not None:
                return refusal
            run = target(context, request)
            uwsgi = _import_uwsgi()
            offered = request.environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
            chosen = self.choose_subprotocol(
                [name.strip() for name in offered.split(",") if name.strip()]
            )
            if chosen is None:
                uwsgi.websocket_handshake()
            else:  # empty key and origin: uWSGI takes the request's own
                uwsgi.websocket_handshake("", "", chosen)
            ws = UWSGIWebsocket(uwsgi, request.environ, use_str)
            ws.subprotocol = chosen
            ws._serve(run)

        return uwsgi_websocket_view
