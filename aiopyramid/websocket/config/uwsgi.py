"""Websocket views served by uWSGI's asyncio plugin.

uWSGI does the opening handshake (``uwsgi.websocket_handshake``), and that is
all of its websocket support this module uses: uWSGI 2.0's own frame parser
mixes up the fragments of connections served by one worker, crashes the
worker on some malformed frames and loses empty messages.  After the
handshake the connection's socket belongs to
:class:`~aiopyramid.websocket.config._uwsgi_connection.UWSGIWebsocket`, which
frames messages with the ``websockets`` library's sans-I/O protocol on the
event loop, while the request's greenlet waits for the view to end.

uWSGI's websocket options keep their meaning: ``websockets-max-size`` (KiB,
1024 by default) limits incoming messages, ``websockets-ping-freq`` (seconds,
30) spaces keepalive pings and ``websockets-pong-tolerance`` (seconds, 3) is
how long a pong may take before the connection is closed.  The
application's ``aiopyramid.websocket.max_queue_bytes`` (1 MiB) bounds the
received messages a connection holds for a view that does not read, and
``aiopyramid.send_timeout`` (30 s) is how long ``send()`` waits for a
client that reads nothing before the connection is given up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.response import Response

from ..._bridge import wait_for
from ..._sending import SEND_TIMEOUT
from ..._settings import limit_setting
from .._inbox import DEFAULT_MAX_QUEUE_BYTES
from ._base import WebsocketMapperBase, not_a_websocket
from ._uwsgi_connection import UWSGIWebsocket

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


def _option(uwsgi: Any, name: str, default: int) -> int:
    """A whole-number uWSGI option of the running server (the last if repeated)."""
    value = uwsgi.opt.get(name)
    if isinstance(value, list):
        value = value[-1]
    if value is None:
        return default
    text = value.decode() if isinstance(value, bytes) else str(value)
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(
            f"uWSGI option {name} = {text!r} is not a whole number; "
            f"UWSGIWebsocketMapper reads it too. Give it as, for example, "
            f"{name} = {default}."
        ) from None


class _AlreadySent(Response):  # type: ignore[misc]
    """The answer Pyramid gets from a websocket view: nothing left to send.

    uWSGI wrote the ``101`` response in the handshake and the conversation is
    over when the view returns, so the WSGI response is empty and calls no
    ``start_response``: the request ends normally, without a traceback.
    Tweens may still read and change it as any response.
    """

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


class UWSGIWebsocketMapper(WebsocketMapperBase):
    """Map websocket views for uWSGI's asyncio plugin.

    A view is a function (``async def``, plain, or a legacy generator using
    ``yield from``) that takes the connection, ``view(ws)``, or a class such
    as a :class:`~aiopyramid.websocket.view.WebsocketConnectionView`
    subclass, made with ``(context, request)`` and then called with ``ws``.
    The upgrade request goes through Pyramid like any other (routes,
    predicates, security, tweens); a request without websocket headers gets
    400.  When the view returns, the connection closes with 1000 and the
    request ends quietly; a view that raises closes it with 1011, and its
    error is raised in the request's greenlet as the cause of a
    :class:`~aiopyramid.websocket.exceptions.WebsocketClosed`, for uWSGI to
    log.  (Applications wrapped in
    :func:`~aiopyramid.websocket.helpers.ignore_websocket_closed` for older
    versions keep working unchanged.)

    Options, as class attributes of a subclass or for one view through
    :meth:`~WebsocketMapperBase.options` (no subclass is made): ``use_str``
    (``True``: text frames reach the view as ``str``; ``False``: as UTF-8
    ``bytes``, which ``use_bytes=True`` says too), ``subprotocols`` and
    ``allowed_origins``, as for
    :class:`~aiopyramid.websocket.config.WebsocketMapper`.
    """

    def __call__(self, view: Any) -> Callable[[Any, Any], Any]:
        """Map ``view`` into a ``(context, request)`` callable."""
        target = self.view_target(view)
        use_str = not self.use_bytes

        def uwsgi_websocket_view(context: Any, request: Any) -> Any:
            # Pyramid's own tests call views with request=None: no websocket.
            if request is None or "HTTP_SEC_WEBSOCKET_KEY" not in request.environ:
                return not_a_websocket()
            refusal = self.refuse_origin(request)
            if refusal is not None:
                return refusal
            run = target(context, request)
            uwsgi = _import_uwsgi()
            if "https-socket" in uwsgi.opt:
                raise RuntimeError(
                    "UWSGIWebsocketMapper writes websocket frames on the raw "
                    "connection, which uWSGI's https-socket encrypts itself. "
                    "Terminate TLS in front of uWSGI (nginx, uWSGI's https "
                    "router) and serve the application on a plain http-socket "
                    "or uwsgi socket."
                )
            offered = request.environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
            chosen = self.choose_subprotocol(
                [name.strip() for name in offered.split(",") if name.strip()]
            )
            if chosen is None:
                uwsgi.websocket_handshake()
            else:  # empty key and origin: uWSGI takes the request's own
                uwsgi.websocket_handshake("", "", chosen)
            ping_interval = _option(uwsgi, "websockets-ping-freq", 30)
            settings = request.registry.settings or {}
            ws = UWSGIWebsocket(
                uwsgi.connection_fd(),
                use_str=use_str,
                max_size=_option(uwsgi, "websockets-max-size", 1024) * 1024,
                ping_interval=ping_interval or None,
                ping_timeout=_option(uwsgi, "websockets-pong-tolerance", 3),
                max_queue_bytes=limit_setting(
                    settings,
                    "aiopyramid.websocket.max_queue_bytes",
                    int,
                    DEFAULT_MAX_QUEUE_BYTES,
                    "Write a number of bytes, e.g. 1048576, or 0 for no limit.",
                ),
                send_timeout=limit_setting(
                    settings,
                    "aiopyramid.send_timeout",
                    float,
                    SEND_TIMEOUT,
                    "Write a number of seconds, e.g. 30, or 0 to wait for ever.",
                ),
            )
            ws.subprotocol = chosen
            # The request's greenlet sleeps here while the conversation runs on
            # the loop; a failed view comes back as WebsocketClosed from error.
            wait_for(ws.serve(run), "websocket view")
            return _AlreadySent(status=101)

        return uwsgi_websocket_view
