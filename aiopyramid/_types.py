"""The types of the WSGI and ASGI interfaces, named once for the whole package.

WSGI (PEP 3333): :data:`Environ`, :class:`StartResponse`, :data:`WSGIApp`.
ASGI 3: :data:`Scope`, :data:`Message`, :data:`Receive`, :data:`Send`,
:data:`ASGIApp`, and TypedDicts for the shapes aiopyramid reads and writes:
the keys of an :class:`HTTPScope` and a :class:`WebsocketScope`, and every
message the bridge sends.  What a server hands over (scopes, received
messages) is typed as a plain ``dict``, since servers add keys of their own
(the scope TypedDicts say which keys aiopyramid reads); what aiopyramid
sends is one of the TypedDicts, and :data:`Send` takes any mapping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, Protocol, TypedDict

#: A PEP 3333 environ.
Environ = dict[str, Any]

#: Response headers as WSGI gives them: ``(name, value)`` text pairs.
Headers = list[tuple[str, str]]


class StartResponse(Protocol):
    """The ``start_response`` callable a WSGI application is given."""

    def __call__(
        self, status: str, headers: Headers, exc_info: Any = None, /
    ) -> Callable[[bytes], object]:
        """Begin the response; return the ``write`` callable."""


#: A PEP 3333 application.
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

#: Called once a response is complete: (environ, status line, response
#: headers, body bytes sent, seconds taken).
AccessLogger = Callable[[Environ, str, Headers, int, float], None]

#: An ASGI connection scope as the server passes it (:class:`HTTPScope` and
#: :class:`WebsocketScope` list the keys aiopyramid reads).
Scope = dict[str, Any]
#: An ASGI message as ``receive()`` returns it.
Message = dict[str, Any]
#: The ASGI ``receive`` callable.
Receive = Callable[[], Awaitable[Message]]
#: The ASGI ``send`` callable: takes any of the messages below.
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
#: An ASGI 3 application (:class:`aiopyramid.asgi.ASGIBridge` is one).
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _ConnectionScope(TypedDict, total=False):
    """Keys that ``http`` and ``websocket`` scopes share (ASGI 3)."""

    asgi: dict[str, str]
    http_version: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    extensions: dict[str, dict[object, object]]
    state: dict[str, Any]


class HTTPScope(_ConnectionScope, total=False):
    """An ASGI ``http`` scope: one request."""

    type: Literal["http"]
    method: str


class WebsocketScope(_ConnectionScope, total=False):
    """An ASGI ``websocket`` scope: one connection, before its handshake."""

    type: Literal["websocket"]
    subprotocols: list[str]


#: The type of a response's head: plain, or a websocket's refusal.
StartType = Literal["http.response.start", "websocket.http.response.start"]
#: The type of a response's body chunk: plain, or a websocket's refusal.
BodyType = Literal["http.response.body", "websocket.http.response.body"]


class ResponseStart(TypedDict):
    """``http.response.start`` (or ``websocket.http.response.start``)."""

    type: StartType
    status: int
    headers: list[tuple[bytes, bytes]]


class ResponseBody(TypedDict, total=False):
    """``http.response.body`` (or ``websocket.http.response.body``)."""

    type: BodyType
    body: bytes
    more_body: bool


class WebsocketAccept(TypedDict, total=False):
    """``websocket.accept``: the handshake succeeds."""

    type: Literal["websocket.accept"]
    subprotocol: str | None
    headers: list[tuple[bytes, bytes]]


class WebsocketSend(TypedDict, total=False):
    """``websocket.send``: one message, ``text`` or ``bytes``."""

    type: Literal["websocket.send"]
    text: str
    bytes: bytes


class WebsocketClose(TypedDict):
    """``websocket.close``: end the connection (before accepting: refuse it)."""

    type: Literal["websocket.close"]
    code: int
    reason: str
