"""The docs' literal (non-doctest) Python examples run as written."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.view import view_config

from aiopyramid.asgi import make_asgi_app
from aiopyramid.websocket.config import WebsocketMapper
from tests.harness.asgi_client import literal_blocks, texts, websocket_conversation
from tests.harness.servers import ROOT

DOCS = ROOT / "docs"


def run_block(page: str, marker: str, **names: Any) -> dict[str, Any]:
    """Execute the one literal block of ``page`` that contains ``marker``."""
    (code,) = [b for b in literal_blocks(DOCS / page) if marker in b]
    namespace: dict[str, Any] = {"view_config": view_config, **names}
    exec(compile(code, str(DOCS / page), "exec"), namespace)
    return namespace


def serve(view: Any, **options: Any) -> Any:
    with Configurator() as config:
        config.include("aiopyramid")
        config.add_route("ws", "/ws")
        config.add_view(view, route_name="ws", **options)
    return make_asgi_app(config.make_wsgi_app())


def test_websocket_echo_views_both_styles():
    """The async and the legacy generator echo views of websockets.rst echo."""
    modern = run_block("websockets.rst", "async def echo(ws)")["echo"]
    legacy = run_block(
        "websockets.rst", "yield from ws.recv()", WebsocketMapper=WebsocketMapper
    )["echo"]
    for view in (modern, legacy):
        app = serve(view, mapper=WebsocketMapper)
        assert texts(websocket_conversation(app, "/ws", ["a", b"b"])) == ["a", b"b"]


def test_websocket_class_view_example():
    """websockets.rst's Chat view greets by route name and shouts back."""
    chat = run_block("websockets.rst", "class Chat", WebsocketMapper=WebsocketMapper)[
        "Chat"
    ]
    with Configurator() as config:
        config.include("aiopyramid")
        config.add_route("chat", "/chat/{name}")
        config.add_view(chat, route_name="chat")
    app = make_asgi_app(config.make_wsgi_app())
    sent = websocket_conversation(app, "/chat/ada", ["hi"])
    assert texts(sent) == ["hello ada", "HI"]


def test_options_example_agrees_a_subprotocol_and_uses_bytes():
    """The options example picks its preferred subprotocol and gets bytes."""
    received: list[Any] = []
    # The example's body is "...": run it, then give its options a real view.
    run_block(
        "websockets.rst", "WebsocketMapper.options(", WebsocketMapper=WebsocketMapper
    )

    async def feed(ws: Any) -> None:
        received.append(await ws.recv())

    options_mapper = WebsocketMapper.options(
        use_bytes=True, subprotocols=["feed.v2", "feed"]
    )
    app = serve(feed, mapper=options_mapper)
    sent = websocket_conversation(
        app, "/ws", ["text"], subprotocols=["feed", "feed.v2"]
    )
    assert sent[0]["type"] == "websocket.accept"
    assert sent[0]["subprotocol"] == "feed.v2"
    assert received == [b"text"]


def test_uwsgi_page_examples_define_what_they_say():
    """uwsgi.rst's echo view and bytes mapper build without uWSGI present."""
    from aiopyramid.websocket.config import UWSGIWebsocketMapper

    mapper = run_block(
        "uwsgi.rst", "class BytesMapper", UWSGIWebsocketMapper=UWSGIWebsocketMapper
    )["BytesMapper"]
    assert mapper.use_str is False
    assert issubclass(mapper, UWSGIWebsocketMapper)
