"""The README's Python examples run as written."""

from __future__ import annotations

from pyramid.config import Configurator
from webtest import TestApp

from aiopyramid.asgi import make_asgi_app
from aiopyramid.testing import SynchronousApp
from tests.harness.asgi_client import literal_blocks, texts, websocket_conversation
from tests.harness.servers import ROOT


def block_with(marker: str) -> dict:
    """Execute the README's one Python block that contains ``marker``."""
    blocks = literal_blocks(ROOT / "README.rst")
    (code,) = [b for b in blocks if marker in b and "import" in b]
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
    from aiopyramid.websocket.config import WebsocketMapper

    echo = block_with("async def echo(ws)")["echo"]
    with Configurator() as config:
        config.include("aiopyramid")
        config.add_route("echo", "/echo")
        config.add_view(echo, route_name="echo", mapper=WebsocketMapper)
    app = make_asgi_app(config.make_wsgi_app())
    sent = websocket_conversation(app, "/echo", ["hello", b"bytes"])
    assert sent[0]["type"] == "websocket.accept"
    assert texts(sent) == ["hello", b"bytes"]
