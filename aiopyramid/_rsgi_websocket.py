"""The websocket path of the RSGI adapter: one granian ``ws`` scope, one connection.

:func:`serve_websocket` serves a ``ws`` scope for an
:class:`aiopyramid.rsgi.RSGIApp` as the ASGI bridge's websocket half does:
the upgrade request runs through the application as a ``GET`` with its
upgrade headers (the environ from the one builder), its ``ws``
(:class:`~aiopyramid.websocket._rsgi.RSGIWebsocket`) waiting in the environ
under :data:`~aiopyramid.websocket._bridged.WEBSOCKET_KEY` for
:class:`~aiopyramid.websocket.config.WebsocketMapper`, which accepts the
handshake.  An application that answers without accepting refuses it with
its response's status (granian sends the status alone, with an empty body
and none of the response's headers).  Past ``max_websockets`` a handshake
is refused with ``503`` (without ``Retry-After``: granian cannot send it).
Access lines: ``101`` when accepted, the close code when the connection
ends, the status of a refusal.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from ._asgi_websocket import BUSY_STATUS
from ._environ import BadRequest
from ._failures import report_failure
from ._greenlets import run_in_child_greenlet
from ._response import WSGIResponse, call_app
from ._rsgi_http import environ_of_rsgi, line_environ_of_rsgi
from ._sending import Senders
from ._settings import websocket_max_size
from ._task_response import uncancel
from ._types import Environ
from ._watchdog import ensure_watched
from .websocket._bridged import WEBSOCKET_KEY
from .websocket._rsgi import RSGIWebsocket

__all__ = ["WebsocketSettings", "serve_websocket"]


class _Refusal(WSGIResponse):
    """What the application answers to a handshake it does not accept.

    Only the status reaches the client (granian's ``close(status)``): the
    body is never sent.
    """

    __slots__ = ()

    async def send_body(self, data: bytes, more: bool) -> None:
        """Discard the body: granian cannot send one to a websocket scope."""


class _Uncounted:
    """The slots a websocket's sends give back: websockets are not requests."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = 0


class WebsocketSettings:
    """An :class:`~aiopyramid.rsgi.RSGIApp`'s websocket settings and deadline.

    ``max_size`` is ``aiopyramid.websocket.max_size`` (1 MiB unless set, as
    on the gunicorn worker); the send deadline is the bridge's
    ``send_timeout``, kept apart from the requests' (a websocket waiting for
    its client holds no request slot).
    """

    __slots__ = ("max_size", "senders")

    def __init__(self, bridge: Any) -> None:
        settings = getattr(bridge.registry, "settings", None) or {}
        self.max_size = websocket_max_size(settings)
        self.senders = Senders(_Uncounted(), bridge.send_timeout)


async def serve_websocket(
    bridge: Any, settings: WebsocketSettings, root_path: str, scope: Any, protocol: Any
) -> None:
    """Serve one RSGI ``ws`` scope with ``bridge``'s application and settings."""
    logger = bridge.websocket_logger
    limit = bridge.max_websockets
    if limit is not None and bridge.websockets >= limit:
        protocol.close(503)
        if logger is not None:
            logger(line_environ_of_rsgi(scope), BUSY_STATUS, [], 0, 0.0)
        return
    try:
        environ = environ_of_rsgi(scope, root_path, bridge.limits, bridge.header_map)
    except BadRequest:
        protocol.close(400)
        if logger is not None:
            logger(line_environ_of_rsgi(scope), "400 Bad Request", [], 0, 0.0)
        return
    task = asyncio.current_task()
    ws = RSGIWebsocket(scope, protocol, settings.max_size, settings.senders, task)
    environ["wsgi.input"] = io.BytesIO()
    environ["wsgi.multiprocess"] = bridge.multiprocess
    environ[WEBSOCKET_KEY] = ws
    ws.log_to(logger, environ)  # 101 when accepted, the close code at the end
    ensure_watched(bridge.registry, task.get_loop() if task else None)
    response = _Refusal()
    bridge.websockets += 1
    try:
        await _run(bridge, environ, ws, response, task)
    finally:
        bridge.websockets -= 1
    if ws.accepted:
        # Closed (1000) if the view did not; given back to granian even if
        # the client closed, since granian waits for that to end TCP.
        await ws.finish()
        return
    status = response.status or "403 Forbidden"
    protocol.close(int(status[:3]))
    ws.log(status)


async def _run(
    bridge: Any,
    environ: Environ,
    ws: RSGIWebsocket,
    response: _Refusal,
    task: asyncio.Task[Any] | None,
) -> None:
    """The application, in a child greenlet of the connection's task."""
    try:
        result = await run_in_child_greenlet(call_app, bridge.app, environ, response)
        # A refusal's body, never sent: closed all the same.
        aclose = getattr(result, "aclose", None)
        if aclose is not None:
            await aclose()
        close = getattr(result, "close", None)
        if close is not None:
            close()
    except Exception as error:
        report_failure(environ, error)
        if not ws.accepted:
            response.status = "500 Internal Server Error"
        elif not ws.closed:
            await ws.close(1011)
    except asyncio.CancelledError:
        if not ws.timed_out or task is None:
            raise
        # Our own cancellation of a connection whose client took nothing
        # for the send deadline: it has unwound, and is closed.
        uncancel(task)
