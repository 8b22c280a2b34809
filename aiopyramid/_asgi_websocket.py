"""The websocket half of the ASGI bridge: one ``websocket`` scope, one connection.

:class:`WebsocketHalf` is a base of :class:`aiopyramid.asgi.ASGIBridge`,
which sets the attributes declared here.  The upgrade request runs through
the application as a ``GET`` with its upgrade headers, the connection's
``ws`` (:class:`~aiopyramid.websocket._asgi.ASGIWebsocket`) waiting in the
environ under :data:`~aiopyramid.websocket._bridged.WEBSOCKET_KEY` for the
mapper, which accepts the handshake.  An application that answers without
accepting refuses it: with its whole response where the server supports
ASGI's ``websocket.http.response`` extension (:class:`Denial`), with
``403`` elsewhere.  Websockets are counted apart from requests: past
``max_websockets`` a handshake is refused with ``503`` and ``Retry-After``
(``403`` where the server cannot send it).
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

from ._access_log import log_environ
from ._asgi_response import Response
from ._environ import BadRequest, Limits, environ_of_scope
from ._greenlets import run_in_child_greenlet
from ._response import call_app, stream_async
from ._types import (
    AccessLogger,
    BodyType,
    Receive,
    Scope,
    Send,
    StartType,
    WebsocketClose,
    WSGIApp,
)
from ._watchdog import ensure_watched
from .websocket._asgi import ASGIWebsocket
from .websocket._bridged import WEBSOCKET_KEY

#: What a refusal past a budget tells the client to wait before it retries
#: (seconds): long enough not to hammer a full server, short enough for a
#: reconnecting websocket client.
RETRY_AFTER = "1"
#: The status of that refusal, as access logs show it.
BUSY_STATUS = "503 Service Unavailable"


def _refusal() -> WebsocketClose:
    """Closing before accepting refuses the handshake (servers answer ``403``)."""
    return {"type": "websocket.close", "code": 1008, "reason": ""}


class HandshakeResponse(Response):
    """An HTTP response to a websocket handshake, where the server takes one.

    Sent as ASGI's ``websocket.http.response.*`` messages.
    """

    __slots__ = ()

    START: ClassVar[StartType] = "websocket.http.response.start"
    BODY: ClassVar[BodyType] = "websocket.http.response.body"


class Denial(HandshakeResponse):
    """The application's response refusing a websocket handshake.

    Nothing is sent once the mapper has accepted the handshake (the
    conversation is the answer).
    """

    __slots__ = ("ws",)

    def __init__(self, send: Send, ws: ASGIWebsocket) -> None:
        super().__init__(send)
        self.ws = ws

    async def send_body(self, data: bytes, more: bool) -> None:
        """Send one chunk of the refusal, unless the handshake was accepted."""
        if not self.ws.accepted:
            await super().send_body(data, more)


class WebsocketHalf:
    """Serves the ``websocket`` scopes of :class:`~aiopyramid.asgi.ASGIBridge`."""

    # What this half reads from the bridge (set by ASGIBridge.__init__).
    app: WSGIApp
    registry: Any
    limits: Limits | None
    header_map: str
    multiprocess: bool
    max_websockets: int | None
    websocket_logger: AccessLogger | None
    #: Websockets being served now (requests are counted apart).
    websockets: int

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        ws = ASGIWebsocket(scope, receive, send)
        denial = "websocket.http.response" in scope.get("extensions", {})
        response = Denial(send, ws)
        response.discard = not denial
        limit = self.max_websockets
        if limit is not None and self.websockets >= limit:
            await self._busy(send, denial, scope)
            return
        try:
            environ = environ_of_scope(
                scope, io.BytesIO(), self.limits, self.header_map
            )
        except BadRequest:
            await send(_refusal())
            return
        environ["wsgi.multiprocess"] = self.multiprocess
        environ[WEBSOCKET_KEY] = ws
        logger = self.websocket_logger
        ws.log_to(logger, environ)  # 101 when accepted, the close code at the end
        ensure_watched(self.registry)  # a server without lifespan or HTTP
        self.websockets += 1
        try:
            result = await run_in_child_greenlet(call_app, self.app, environ, response)
        finally:
            self.websockets -= 1
        if ws.accepted:
            await ws.finish()
            return
        if logger is not None:
            logger(environ, response.status or "403", [], 0, 0.0)
        if not denial:
            # The server cannot send our refusal: close before accepting,
            # which every ASGI server answers with 403.
            await send(_refusal())
            return
        if type(result) is list:
            await response.send_body(b"".join(result), False)
        elif result is not None:
            await stream_async(result, response)

    async def _busy(self, send: Send, denial: bool, scope: Scope) -> None:
        """Refuse a handshake past ``max_websockets``: ``503`` (else ``403``)."""
        logger = self.websocket_logger
        if logger is not None:
            logger(log_environ(scope), BUSY_STATUS, [], 0, 0.0)
        if not denial:
            # The server cannot send a response of ours: closing before
            # accepting is what every ASGI server answers with 403.
            await send(_refusal())
            return
        response = HandshakeResponse(send)
        body = response._refusal(503, "Service Unavailable: too many websockets.")
        response.headers.append(("Retry-After", RETRY_AFTER))
        await response.send_body(body, False)
