"""Serve a Pyramid (or any WSGI) application from an ASGI server.

:func:`make_asgi_app` wraps the WSGI application in an :class:`ASGIBridge`, an
ASGI 3 application that uvicorn, hypercorn, granian (``--interface asgi``) and
:class:`~aiopyramid.gunicorn.worker.AsyncGunicornWorker` serve directly::

    from aiopyramid.asgi import make_asgi_app
    application = make_asgi_app(config.make_wsgi_app())

Each request runs the WSGI application in a child greenlet of the event loop
(:func:`aiopyramid._bridge.run_in_child_greenlet`: the server already gave
the request a task of its own, whose context the greenlet shares), so
coroutine views run on the server's own loop with no thread hop.  The
bridge owns both bodies: the request's is read before the application runs
(spooled to a temporary file past 1 MiB), so that ``request.body`` works even
in a coroutine view, which may not wait; the response's is sent chunk by
chunk as the application produces it.

This module holds the bridge's settings and its public names; the work is
done by its two halves, ``aiopyramid/_asgi_http.py`` (``http`` scopes) and
``aiopyramid/_asgi_websocket.py`` (``websocket`` scopes), with the response
in ``aiopyramid/_asgi_response.py``.
"""

from __future__ import annotations

from pyramid.settings import asbool

from ._access_log import log_access
from ._asgi_http import HTTPHalf
from ._asgi_websocket import WebsocketHalf
from ._environ import HEADER_MAPS, Limits
from ._sending import SEND_TIMEOUT, Senders
from ._settings import limit_setting
from ._startup import check_included
from ._types import AccessLogger, Receive, Scope, Send, WSGIApp
from ._watchdog import ensure_watched

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_WEBSOCKETS",
    "DEFAULT_SEND_TIMEOUT",
    "ASGIBridge",
    "AccessLogger",
    "Limits",
    "log_access",
    "make_asgi_app",
]

#: Largest request body accepted when nothing says otherwise: 32 MiB.  The
#: bridge reads a whole body before the application runs (to a temporary file
#: past 1 MiB), even for a URL that does not exist, so without a limit one
#: client could fill the disk.  32 MiB takes form posts and ordinary browser
#: uploads (photos, documents); applications taking larger files set
#: ``aiopyramid.max_body_size`` (``0``: no limit).
DEFAULT_MAX_BODY_SIZE = 32 * 2**20

#: Seconds a client may pause while sending a body before it is answered
#: ``408`` and its connection closed (gunicorn's default ``timeout``).
DEFAULT_BODY_TIMEOUT = 30.0

#: Bounds on the request head when nothing says otherwise: gunicorn's
#: defaults (a request line of 4094 bytes, 100 header fields of 8190 bytes
#: each).  Servers that parse the head before the bridge sees it (uvicorn,
#: hypercorn) bound it only once it is complete, if at all: these make a
#: head over them a ``400`` before the application runs.
DEFAULT_LIMITS = Limits()

#: Seconds a client may take no bytes of its response before its request is
#: cancelled and its stream (HTTP/2) or connection ended: a client that
#: stops reading must not hold a request, and the bytes waiting for it, for
#: ever.  30 s is gunicorn's ``timeout``; ``aiopyramid.send_timeout`` sets
#: another (``0``: for ever).
DEFAULT_SEND_TIMEOUT = SEND_TIMEOUT

#: Most websockets served at once when nothing says otherwise.  They are
#: counted apart from requests (``max_concurrency``): idle websockets must
#: not leave HTTP clients without an answer.  Each costs a connection and
#: some 30 KiB of memory while idle, and up to its buffers (see
#: ``docs/security.rst``) while busy.
DEFAULT_MAX_WEBSOCKETS = 1000

#: What the errors of the body and limit settings advise.
OFF = "0 turns the limit off."

#: The settings of the head limits, with the field of :class:`Limits` each sets.
_LIMIT_SETTINGS = {
    "aiopyramid.limit_request_line": "request_line",
    "aiopyramid.limit_request_fields": "request_fields",
    "aiopyramid.limit_request_field_size": "request_field_size",
}


class ASGIBridge(HTTPHalf, WebsocketHalf):
    """An ASGI 3 application serving a WSGI application from the server's loop.

    Build it with :func:`make_asgi_app`.  ``http`` requests run the WSGI
    application in a child greenlet; ``websocket`` requests do too, as a
    ``GET`` with their upgrade headers, with the connection in the environ
    for :class:`~aiopyramid.websocket.config.WebsocketMapper`; ``lifespan``
    events are acknowledged.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_body_size: int | None = None,
        limits: Limits | None = DEFAULT_LIMITS,
        access_logger: AccessLogger | None = None,
        multiprocess: bool = True,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
        header_map: str = "drop",
        max_concurrency: int | None = None,
        websocket_logger: AccessLogger | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        max_websockets: int | None = DEFAULT_MAX_WEBSOCKETS,
    ) -> None:
        if header_map not in HEADER_MAPS:
            raise ValueError(
                f"header_map must be one of {', '.join(HEADER_MAPS)}, not "
                f"{header_map!r}"
            )
        self.app = app
        #: The Pyramid application's registry (``None`` for other WSGI apps).
        self.registry = getattr(app, "registry", None)
        self.max_body_size = max_body_size
        #: Bounds on the request head (``None``: none).
        self.limits = limits
        self.access_logger = access_logger
        #: Called when a websocket is accepted (status ``101``) and when it
        #: ends (its close code as the status, the connection's duration).
        self.websocket_logger = websocket_logger
        #: ``wsgi.multiprocess``: whether other processes serve the same app.
        self.multiprocess = multiprocess
        self.body_timeout = body_timeout
        self.header_map = header_map
        #: Most requests served at once; more get ``503``.  A response
        #: waiting for its client to read does not count.
        self.max_concurrency = max_concurrency
        self.active = 0
        #: Most websockets served at once; more are refused (``503`` where
        #: the server can send it).
        self.max_websockets = max_websockets
        self.websockets = 0
        #: Seconds a client may take no bytes of its response (``None``: no limit).
        self.send_timeout = send_timeout
        self.senders = Senders(self, send_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"aiopyramid.asgi cannot serve {kind!r} scopes")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            event = message["type"].rpartition(".")[2]
            if event == "startup":  # the loop is watched from now on
                ensure_watched(self.registry)
            await send({"type": f"lifespan.{event}.complete"})
            if event == "shutdown":
                return


def make_asgi_app(
    wsgi_app: WSGIApp,
    *,
    max_body_size: int | None = None,
    limits: Limits | None = None,
    access_logger: AccessLogger | None = None,
    multiprocess: bool = True,
    body_timeout: float | None = None,
    header_map: str | None = None,
    max_concurrency: int | None = None,
    websocket_logger: AccessLogger | None = None,
    send_timeout: float | None = None,
    max_websockets: int | None = None,
) -> ASGIBridge:
    """Return an ASGI application that serves ``wsgi_app``.

    ``max_body_size`` is the largest request body accepted, in bytes
    (:data:`DEFAULT_MAX_BODY_SIZE` unless given; ``0``: no limit); a larger
    one is answered ``413``.  ``body_timeout`` is how long, in seconds, a
    body may stall before ``408`` (:data:`DEFAULT_BODY_TIMEOUT`; ``0``: for
    ever).  ``limits`` bounds the request head (:class:`Limits`;
    :data:`DEFAULT_LIMITS` unless given, ``Limits(0, 0, 0)``: no bounds); a
    head over them is answered ``400``.
    ``header_map`` says what becomes of header names with ``_``: ``"drop"``
    (default), ``"refuse"`` (400) or ``"dangerous"`` (kept).
    ``max_concurrency`` is the most requests served at once, more get ``503``
    (a response waiting for its client to read does not count);
    ``max_websockets`` the most websockets (:data:`DEFAULT_MAX_WEBSOCKETS`;
    ``0``: no limit), more are refused with ``503`` where the server can
    send it (ASGI's ``websocket.http.response``), ``403`` elsewhere.
    ``send_timeout`` is how long, in seconds, a client may take no bytes of
    its response before the request is cancelled and its stream or
    connection ended (:data:`DEFAULT_SEND_TIMEOUT`; ``0``: for ever).
    ``access_logger`` is called after every response, errors, refusals and
    abandoned requests included, with what an access log line needs
    (:func:`log_access` writes one); ``websocket_logger`` (the access logger
    unless given) gets two such calls for each websocket: ``101`` when it is
    accepted, and its close code with the connection's duration when it
    ends.  ``multiprocess`` is
    ``wsgi.multiprocess``: true unless the server is known to run the
    application in one process only (add-ons such as pyramid_debugtoolbar
    turn themselves off when it is true).

    Arguments not given come from a Pyramid application's settings:
    ``aiopyramid.max_body_size``, ``aiopyramid.body_timeout``,
    ``aiopyramid.send_timeout``, ``aiopyramid.websocket.max_connections``,
    ``aiopyramid.header_map``, ``aiopyramid.access_log`` (true:
    :func:`log_access`), and the head limits named as gunicorn's settings:
    ``aiopyramid.limit_request_line``, ``aiopyramid.limit_request_fields``
    and ``aiopyramid.limit_request_field_size`` (``0``: no limit).
    """
    settings = getattr(getattr(wsgi_app, "registry", None), "settings", None) or {}
    if max_body_size is None:
        max_body_size = limit_setting(
            settings, "aiopyramid.max_body_size", int, DEFAULT_MAX_BODY_SIZE, OFF
        )
    if body_timeout is None:
        body_timeout = limit_setting(
            settings, "aiopyramid.body_timeout", float, DEFAULT_BODY_TIMEOUT, OFF
        )
    if send_timeout is None:
        send_timeout = limit_setting(
            settings, "aiopyramid.send_timeout", float, DEFAULT_SEND_TIMEOUT, OFF
        )
    if max_websockets is None:
        max_websockets = limit_setting(
            settings,
            "aiopyramid.websocket.max_connections",
            int,
            DEFAULT_MAX_WEBSOCKETS,
            OFF,
        )
    if header_map is None:
        header_map = settings.get("aiopyramid.header_map") or "drop"
    if limits is None:
        limits = Limits(
            **{
                field: limit_setting(
                    settings, name, int, getattr(DEFAULT_LIMITS, field), OFF
                )
                or 0
                for name, field in _LIMIT_SETTINGS.items()
            }
        )
    if access_logger is None and asbool(settings.get("aiopyramid.access_log")):
        access_logger = log_access
    check_included(wsgi_app)
    return ASGIBridge(
        wsgi_app,
        max_body_size=max_body_size or None,
        limits=limits,
        access_logger=access_logger,
        multiprocess=multiprocess,
        body_timeout=body_timeout or None,
        header_map=header_map,
        max_concurrency=max_concurrency or None,
        websocket_logger=websocket_logger or access_logger,
        send_timeout=send_timeout or None,
        max_websockets=max_websockets or None,
    )
