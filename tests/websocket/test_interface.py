"""Every ``ws`` object implements the one declared interface, and the docs list it."""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import typing

from aiopyramid.websocket._asgi import ASGIWebsocket
from aiopyramid.websocket.interface import Websocket
from tests.harness.servers import ROOT, require_module

MEMBERS = {"recv", "send", "close", "closed", "close_code", "subprotocol"}


def protocol_members() -> set[str]:
    return {
        name
        for name in vars(Websocket)
        if not name.startswith("_") and name not in vars(typing.Protocol)
    }


async def nothing(*args):
    return {"type": "websocket.disconnect", "code": 1000}


def test_the_interface_declares_what_views_use():
    """recv, send, close and the three attributes: no more, no less."""
    assert protocol_members() == MEMBERS


def test_the_asgi_ws_is_a_websocket():
    """The ws of WebsocketMapper (gunicorn worker, ASGI servers) implements it."""
    ws = ASGIWebsocket({"type": "websocket"}, nothing, nothing)
    assert isinstance(ws, Websocket)


def test_the_rsgi_ws_is_a_websocket():
    """The ws of WebsocketMapper under granian's RSGI implements it too."""
    from types import SimpleNamespace

    from aiopyramid.websocket._rsgi import RSGIWebsocket

    ws = RSGIWebsocket(SimpleNamespace(path="/", headers={}), None)
    assert isinstance(ws, Websocket)


def test_the_uwsgi_ws_is_a_websocket():
    """The ws of UWSGIWebsocketMapper implements it too."""
    require_module("websockets")
    from aiopyramid.websocket.config._uwsgi_connection import UWSGIWebsocket

    async def main():
        ours, theirs = socket.socketpair()
        with ours, theirs:
            ws = UWSGIWebsocket(ours.fileno())
            try:
                return isinstance(ws, Websocket), ws.closed, ws.close_code
            finally:
                ws._release()

    assert asyncio.run(main()) == (True, False, None)


def test_something_else_is_not_a_websocket():
    """An object missing a member is told apart."""

    class Half:
        subprotocol = None
        closed = False

        async def recv(self):
            return None

        async def send(self, message):
            pass

    assert not isinstance(Half(), Websocket)


def test_the_websockets_page_documents_each_member():
    """docs/websockets.rst's list of the ws object is the interface, exactly."""
    page = (ROOT / "docs" / "websockets.rst").read_text(encoding="utf-8")
    section = page.split("The ``ws`` object", 1)[1].split("Class-based views", 1)[0]
    lines = section.splitlines()
    # The terms of the definition list: each followed by its indented text.
    terms = [
        line
        for line, after in itertools.pairwise(lines)
        if line.startswith("``") and after.startswith("    ")
    ]
    named = set(re.findall(r"``(?:await )?ws\.(\w+)", "\n".join(terms)))
    assert named == MEMBERS
    assert "aiopyramid.websocket.interface.Websocket" in section


def test_the_interface_example_echoes():
    """The module's typed echo view runs as written."""
    import textwrap

    from aiopyramid.asgi import make_asgi_app
    from aiopyramid.websocket import interface
    from aiopyramid.websocket.config import WebsocketMapper
    from tests.harness.asgi_client import texts, websocket_conversation
    from tests.harness.inprocess import make_app

    after = (interface.__doc__ or "").split("::\n", 1)[1].splitlines()
    code = []
    for line in after:  # the literal block: indented (or blank) lines
        if line and not line.startswith("    "):
            break
        code.append(line)
    namespace: dict = {}
    exec(textwrap.dedent("\n".join(code)), namespace)

    def route(config):
        config.add_route("ws", "/ws")
        config.add_view(namespace["echo"], route_name="ws", mapper=WebsocketMapper)

    app = make_asgi_app(make_app(route))
    assert texts(websocket_conversation(app, "/ws", ["a", b"b"])) == ["a", b"b"]
