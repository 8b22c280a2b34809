"""The README's Python examples run as written."""

from __future__ import annotations

import asyncio
import re
import textwrap

from pyramid.config import Configurator
from webtest import TestApp

from aiopyramid.asgi import make_asgi_app
from aiopyramid.testing import SynchronousApp

from .servers import ROOT


def readme_blocks() -> list[str]:
    """The bodies of the README's ``code-block:: python`` and ``::`` Python blocks."""
    text = (ROOT / "README.rst").read_text()
    blocks = re.findall(r"::(?: python)?\n\n((?:    .*\n|\n)+)", text)
    return [textwrap.dedent(b) for b in blocks if "import" in b and "[" not in b[:2]]


def block_with(marker: str) -> dict:
    (code,) = [b for b in readme_blocks() if marker in b]
    namespace: dict = {}
    exec(compile(code, "README.rst", "exec"), namespace)
    return namespace


def test_using_it_example_serves_both_views():
    """The 'Using it' app answers from its coroutine and its plain view."""
    main = block_with("def main(global_config")["main"]
    with SynchronousApp(main({})) as app:
        client = TestApp(app)
        assert client.get("/").json == {"hello": "world"}
        assert client.get("/report").json == {"plain": "views still work"}


def test_echo_example_echoes_over_the_asgi_bridge():
    """The README's echo view echoes text through the ASGI websocket scope."""
    echo = block_with("async def echo(ws)")["echo"]
    with Configurator() as config:
        config.include("aiopyramid")
        config.add_route("echo", "/echo")
        from aiopyramid.websocket.config import WebsocketMapper

        config.add_view(echo, route_name="echo", mapper=WebsocketMapper)
    app = make_asgi_app(config.make_wsgi_app())
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        await asyncio.sleep(0)
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"x"),
            (b"connection", b"upgrade"),
            (b"upgrade", b"websocket"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "subprotocols": [],
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "websocket.accept"
    assert {"type": "websocket.send", "text": "hello"} in [
        {k: v for k, v in m.items() if k in ("type", "text")} for m in sent
    ]
