"""The RSGI adapter's websocket path in process, on a real loop, with a stand-in.

What granian does not do on demand: a budget already full, a transport
that fails or never takes a frame, an application that fails before the
handshake.  ``tests/websocket/test_rsgi_websockets.py`` runs the rest under
granian itself.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from pyramid.config import Configurator

from aiopyramid.rsgi import make_rsgi_app
from aiopyramid.websocket.config import WebsocketMapper
from aiopyramid.websocket.exceptions import WebsocketClosed
from tests.test_rsgi_adapter import Headers as BaseHeaders
from tests.test_rsgi_adapter import Scope

SEEN: list[Any] = []


class Transport:
    """The transport of an accepted websocket: messages in, frames out."""

    def __init__(self, messages: list[Any], mode: str = "ok") -> None:
        self.messages = list(messages)
        self.mode = mode
        self.sent: list[str | bytes] = []

    async def receive(self) -> Any:
        if not self.messages:
            raise RuntimeError("RSGI transport is closed")
        return self.messages.pop(0)

    async def _send(self, data: str | bytes) -> None:
        if self.mode == "fail":
            raise RuntimeError("RSGI transport is closed")
        if self.mode == "stuck":
            await asyncio.Event().wait()
        self.sent.append(data)

    send_str = send_bytes = _send


class Protocol:
    """granian's websocket protocol, recording what the adapter did."""

    def __init__(self, messages: list[Any] = (), mode: str = "ok") -> None:
        self.transport = Transport(list(messages), mode)
        self.closes: list[int] = []
        self.accepted = False

    async def accept(self) -> Transport:
        self.accepted = True
        return self.transport

    def close(self, status: int | None = None) -> None:
        self.closes.append(status)


def text(data: str) -> Any:
    return SimpleNamespace(kind=2, data=data)


def binary(data: bytes) -> Any:
    return SimpleNamespace(kind=1, data=data)


CLOSE = SimpleNamespace(kind=0)


async def echo(ws):
    while (message := await ws.recv()) is not None:
        await ws.send(message)
    SEEN.append(("echo", ws.close_code))


async def sender(ws):
    try:
        await ws.send("one")
    except WebsocketClosed as closed:
        SEEN.append(("sender", str(closed), ws.close_code))
        raise


async def deluge(ws):
    while True:
        await ws.send(b"x")


def failing(request):
    raise ValueError("before the handshake")


def refusing(request):
    """Refuse with a generated body (async with ``?async``), noting its close."""
    from pyramid.response import Response

    def body():
        try:
            yield b"never sent"
        finally:
            SEEN.append("closed")

    class ABody:
        """An async body that notes when it is closed."""

        def __aiter__(self):
            return self

        async def __anext__(self):
            raise StopAsyncIteration

        async def aclose(self):
            SEEN.append("aclosed")

    response = Response(status=401)
    response.app_iter = ABody() if "async" in request.params else body()
    return response


def app(**settings: Any) -> Any:
    config = Configurator(settings=settings)
    config.include("aiopyramid")
    config.add_route("echo", "/echo")
    config.add_view(echo, route_name="echo", mapper=WebsocketMapper)
    config.add_route("bytes", "/bytes")
    config.add_view(
        echo, route_name="bytes", mapper=WebsocketMapper.options(use_bytes=True)
    )
    config.add_route("sender", "/sender")
    config.add_view(sender, route_name="sender", mapper=WebsocketMapper)
    config.add_route("deluge", "/deluge")
    config.add_view(deluge, route_name="deluge", mapper=WebsocketMapper)
    config.add_route("refusing", "/refusing")
    config.add_view(refusing, route_name="refusing")
    config.add_route("failing", "/failing")
    config.add_view(failing, route_name="failing")
    return config.make_wsgi_app()


def serve(scope: Any, protocol: Protocol, settings=None, **options) -> list[tuple]:
    """Serve one websocket; the access lines (``busy``: websockets already open)."""
    lines: list[tuple] = []
    busy = options.pop("busy", None)
    served = make_rsgi_app(
        app(**(settings or {})),
        access_logger=lambda *line: lines.append(line),
        **options,
    )
    if busy:
        served.bridge.websockets = busy
    asyncio.run(asyncio.wait_for(served.__rsgi__(scope, protocol), 10))
    return lines


class Headers(BaseHeaders):
    """RSGI's header mapping, with ``get`` (which the websocket path reads)."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.pairs).get(name, default)


def ws_scope(path: str, headers=()) -> Scope:
    """An RSGI ``ws`` scope for ``path``."""
    scope = Scope(path=path, headers=list(headers))
    scope.proto = "ws"
    scope.headers = Headers(scope.headers.pairs)
    return scope


@pytest.fixture(autouse=True)
def clear_seen():
    SEEN.clear()


def test_text_and_bytes_and_a_client_close():
    """Messages are echoed by kind; a client's close frame ends recv() (1005)."""
    protocol = Protocol([text("hé"), binary(b"\x00"), CLOSE])
    lines = serve(ws_scope("/echo"), protocol)
    assert protocol.transport.sent == ["hé", b"\x00"]
    assert [line[1] for line in lines] == ["101", "1005"]
    assert SEEN == [("echo", 1005)]
    assert protocol.closes == [1005]  # given back to granian once


def test_text_as_bytes_and_over_the_limit():
    """use_bytes hands text over as UTF-8; a text over max_size closes 1009."""
    protocol = Protocol([text("é"), text("é" * 600)])
    settings = {"aiopyramid.websocket.max_size": "1000"}
    lines = serve(ws_scope("/bytes"), protocol, settings)
    assert protocol.transport.sent == ["é".encode()]
    assert lines[-1][1] == "1009"
    assert protocol.closes == [1009]


def test_a_bad_max_size_stops_the_application_with_its_advice():
    """aiopyramid.websocket.max_size is read as the worker reads it: positive."""
    from pyramid.exceptions import ConfigurationError

    settings = {"aiopyramid.websocket.max_size": "-1"}
    with pytest.raises(ConfigurationError, match="or leave it out for 1 MiB"):
        make_rsgi_app(app(**settings))
    assert make_rsgi_app(app()).websocket.max_size == 2**20


def test_a_vanished_client_ends_recv_with_1006():
    """granian's ProtocolClosed in receive(): recv() returns None, code 1006."""
    lines = serve(ws_scope("/echo"), Protocol([]))
    assert SEEN == [("echo", 1006)]
    assert lines[-1][1] == "1006"


def test_a_failed_send_raises_websocket_closed(caplog):
    """A send granian refuses raises WebsocketClosed; the view ends quietly,
    with no failure reported (a client gone is no bug)."""
    lines = serve(ws_scope("/sender"), Protocol(mode="fail"))
    assert SEEN == [("sender", "the client went away", 1006)]
    assert lines[-1][1] == "1006"
    assert "failed in" not in caplog.text


def test_the_send_deadline_ends_a_stuck_connection(caplog):
    """A frame granian never writes: the connection ends at send_timeout."""
    caplog.set_level(logging.INFO, "aiopyramid.asgi")
    protocol = Protocol(mode="stuck")
    lines = serve(ws_scope("/deluge"), protocol, send_timeout=0.2)
    assert lines[-1][1] == "1006"
    assert protocol.closes == [1006]
    assert "aiopyramid.send_timeout" in caplog.text


def test_a_send_waiting_its_turn_on_a_connection_that_ends_raises_closed():
    """A second sender queued behind a stuck one gets WebsocketClosed, not a crash.

    A view and a broadcast may send to one connection at once; when the send
    deadline ends it while the second waits for the first, the second learns
    that the connection closed.
    """
    from aiopyramid.websocket._rsgi import RSGIWebsocket

    async def run() -> tuple[Any, list[int]]:
        protocol = Protocol(mode="stuck")
        ws = RSGIWebsocket(Scope(), protocol)
        await ws.accept()
        first = asyncio.ensure_future(ws.send("first"))
        second = asyncio.ensure_future(ws.send(b"second"))
        await asyncio.sleep(0.01)  # the first is stuck, the second waits its turn
        ws.time_out()
        first.cancel()  # as the connection's task is cancelled
        outcome = await asyncio.gather(second, return_exceptions=True)
        return outcome[0], protocol.closes

    error, closes = asyncio.run(run())
    assert isinstance(error, WebsocketClosed), error
    assert "1006" in str(error)
    assert closes == [1006]


def test_the_budget_refuses_with_503():
    """Past max_websockets the handshake gets 503 before the application runs."""
    protocol = Protocol()
    lines = serve(ws_scope("/echo"), protocol, max_websockets=1, busy=1)
    assert protocol.closes == [503] and not protocol.accepted
    assert lines[0][1] == "503 Service Unavailable"


def test_a_bad_head_refuses_with_400():
    """Two Hosts: 400 before the application runs."""
    protocol = Protocol()
    lines = serve(ws_scope("/echo", [("host", "evil.example")]), protocol)
    assert protocol.closes == [400]
    assert lines[0][1] == "400 Bad Request"


def test_an_application_failing_before_the_handshake_is_a_logged_500(caplog):
    """An error before accepting: reported, and the handshake refused with 500."""
    protocol = Protocol()
    lines = serve(ws_scope("/failing"), protocol)
    assert protocol.closes == [500]
    assert lines[0][1] == "500 Internal Server Error"
    assert "ValueError: before the handshake" in caplog.text


def test_subprotocols_offered_are_read_from_the_header():
    """ws.subprotocols lists the client's offer, in its order."""
    from aiopyramid.websocket._rsgi import RSGIWebsocket

    scope = ws_scope("/echo", [("sec-websocket-protocol", "chat.v2, chat")])
    assert RSGIWebsocket(scope, Protocol()).subprotocols == ["chat.v2", "chat"]


@pytest.mark.parametrize(("query", "closed"), [("", "closed"), ("async", "aclosed")])
def test_a_refusal_sends_its_status_and_closes_its_body(query, closed):
    """A view answering without accepting: its status, and its body closed."""
    protocol = Protocol()
    scope = ws_scope("/refusing")
    scope.query_string = query
    lines = serve(scope, protocol)
    assert protocol.closes == [401] and not protocol.accepted
    assert lines[0][1] == "401 Unauthorized"
    assert [closed] == SEEN
