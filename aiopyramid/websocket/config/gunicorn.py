"""Websocket views served by ``AsyncGunicornWorker``, any ASGI server, or granian.

The upgrade request reaches Pyramid through :mod:`aiopyramid.asgi` as a
``GET`` with its upgrade headers, so routes, traversal, predicates, tweens
and security decide about it like about any request; the ASGI connection
waits in the environ.  When the view is reached, the mapper accepts the
handshake (choosing a subprotocol if the view speaks any), hands the view the
``ws`` object, and closes the connection when the view returns.  A view that
refuses (raises ``HTTPForbidden``, fails a permission) never gets here: the
handshake is refused with that response's status.

The protocol itself (framing, ping/pong, size limits, compression) is the
server's: the ``websockets`` library's sans-I/O protocol in the gunicorn
worker (rather than gunicorn's own implementation; :doc:`/websockets`
compares them), uvicorn's under uvicorn, and granian's own under its RSGI
interface (:mod:`aiopyramid.rsgi`, whose ``ws`` is
:class:`~aiopyramid.websocket._rsgi.RSGIWebsocket`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from ..._bridge import wait_for
from .._asgi import ASGIWebsocket
from .._bridged import WEBSOCKET_KEY, BridgedWebsocket
from ..exceptions import WebsocketClosed
from ..interface import Websocket
from ._base import WebsocketMapperBase, not_a_websocket

__all__ = ["ASGIWebsocket", "WebsocketMapper"]


async def _serve(run: Callable[[Websocket], Any], ws: BridgedWebsocket) -> None:
    """Run the view's coroutine (or plain call) for one connection, on the loop.

    A view that returns closes with ``1000``; one that raises with ``1011``
    (RFC 6455: the server met an unexpected condition), and the error is
    raised on to be logged.
    """
    code = 1011
    try:
        result = run(ws)
        if inspect.isawaitable(result):
            await result
        code = 1000
    except WebsocketClosed as closed:  # sent to a closed connection: done
        cause = closed.__cause__
        if cause is not None and not isinstance(cause, OSError):
            # Raise the cause itself: a WebsocketClosed is a GreenletExit,
            # which would end the request's greenlet as if it had returned,
            # and the bug would go unreported.
            raise cause
        code = 1000
    except asyncio.CancelledError:
        code = 1001  # going away: the server is stopping or the client left
        raise
    finally:
        await ws.close(code)


class WebsocketMapper(WebsocketMapperBase):
    """Map websocket views for ``AsyncGunicornWorker``, ASGI servers and RSGI.

    A view is a function taking the connection, ``view(ws)`` (``async def``,
    a legacy generator using ``yield from``, or plain), or a class made with
    ``(context, request)`` and then called with ``ws``, such as a
    :class:`~aiopyramid.websocket.view.WebsocketConnectionView` subclass.
    Options, as class attributes of a subclass or for one view through
    :meth:`~WebsocketMapperBase.options` (no subclass is made)::

        @view_config(route_name="feed", mapper=WebsocketMapper.options(use_bytes=True))

    * :attr:`use_bytes`: hand every message to the view as ``bytes``
      (``use_str=False`` says the same, in the uWSGI mapper's spelling);
    * :attr:`subprotocols`: the subprotocols the view speaks, best first;
      the first one the client also offers is chosen (``ws.subprotocol``);
    * :attr:`allowed_origins`: origins whose pages may connect besides the
      request's own host (default: the ``aiopyramid.websocket.allowed_origins``
      setting); other browser handshakes get ``403``.

    A plain ``GET`` without upgrade headers gets ``400 Bad Request``.
    """

    def __call__(self, view: Any) -> Callable[[Any, Any], Any]:
        """Map ``view`` into a ``(context, request)`` callable."""
        target = self.view_target(view)
        use_bytes = bool(self.use_bytes)

        def websocket_view(context: Any, request: Any) -> Any:
            # Pyramid's own tests call views with request=None: no websocket.
            ws = request.environ.get(WEBSOCKET_KEY) if request is not None else None
            # An ASGI server's connection, or granian's through aiopyramid.rsgi.
            if not isinstance(ws, BridgedWebsocket):
                return not_a_websocket()
            refusal = self.refuse_origin(request)
            if refusal is not None:
                return refusal
            run = target(context, request)
            ws.use_bytes = use_bytes
            # Both waits run on the loop while this request's greenlet sleeps:
            # first the handshake, then the whole conversation.
            wait_for(ws.accept(self.choose_subprotocol(ws.subprotocols)), "accept")
            wait_for(_serve(run, ws), "websocket view")
            return request.response

        return websocket_view
