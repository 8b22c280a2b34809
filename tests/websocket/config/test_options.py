"""Per-view websocket mapper options: no class made, both spellings of bytes/str."""

from __future__ import annotations

import ast
from typing import Any

import pytest
from pyramid.config import Configurator

from aiopyramid.asgi import make_asgi_app
from aiopyramid.websocket.config import UWSGIWebsocketMapper, WebsocketMapper
from aiopyramid.websocket.config._options import MapperOptions
from aiopyramid.websocket.view import WebsocketConnectionView
from tests.harness.asgi_client import websocket_conversation
from tests.harness.servers import ROOT

MAPPERS = [WebsocketMapper, UWSGIWebsocketMapper]


def serve(view: Any, **options: Any) -> Any:
    with Configurator() as config:
        config.include("aiopyramid")
        config.add_route("ws", "/ws")
        config.add_view(view, route_name="ws", **options)
    return make_asgi_app(config.make_wsgi_app())


def test_no_mapper_class_is_made_at_run_time():
    """options() makes a factory, never a subclass; no type() call is left."""
    before = set(WebsocketMapper.__subclasses__())
    factory = WebsocketMapper.options(use_bytes=True, subprotocols=["a"])
    assert isinstance(factory, MapperOptions)
    assert set(WebsocketMapper.__subclasses__()) == before
    for path in (ROOT / "aiopyramid" / "websocket" / "config").glob("*.py"):
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "type"
            and len(node.args) == 3
        ]
        assert calls == [], path


@pytest.mark.parametrize("mapper", MAPPERS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    ("options", "as_bytes"),
    [
        ({"use_bytes": True}, True),
        ({"use_str": False}, True),
        ({"use_bytes": False}, False),
        ({"use_str": True}, False),
        ({"use_bytes": True, "use_str": False}, True),
        ({}, False),
    ],
)
def test_use_bytes_and_use_str_are_one_option(mapper, options, as_bytes):
    """Either spelling, on either mapper, sets both attributes of the mapper made."""
    factory = mapper.with_options(**options)
    made = factory(attr=None, mapper=factory)
    assert isinstance(made, mapper)
    assert (made.use_bytes, made.use_str) == (as_bytes, not as_bytes)
    assert (factory.use_bytes, factory.use_str) == (as_bytes, not as_bytes)
    # The class itself is untouched: the options live on the instance.
    assert (mapper.use_bytes, mapper.use_str) == (False, True)


@pytest.mark.parametrize("mapper", MAPPERS, ids=lambda m: m.__name__)
def test_a_subclass_may_use_either_spelling(mapper):
    """A class attribute in one spelling sets the other; options still win."""

    class ByStr(mapper):
        use_str = False

    class ByBytes(mapper):
        use_bytes = True

    for subclass in (ByStr, ByBytes):
        assert (subclass.use_bytes, subclass.use_str) == (True, False)
        again = subclass.options(use_str=True)(attr=None)
        assert (again.use_bytes, again.use_str) == (False, True)
        assert again.attr is None


def test_contradictions_and_unknown_options_are_refused():
    """Both spellings saying the same thing, or a misspelt option, fail with advice."""
    with pytest.raises(ValueError, match="opposite spellings"):
        WebsocketMapper.with_options(use_bytes=True, use_str=True)
    with pytest.raises(TypeError, match="opposite spellings"):

        class Confused(UWSGIWebsocketMapper):
            use_bytes = True
            use_str = True

    with pytest.raises(TypeError, match="its options are use_bytes, use_str"):
        WebsocketMapper.with_options(use_byte=True)


def test_options_add_up_and_read_back():
    """options() on a configured mapper adds to it; None leaves a value alone."""
    factory = WebsocketMapper.options(use_bytes=True).options(
        subprotocols=["chat.v2", "chat"], use_bytes=None
    )
    assert factory.values == {
        "use_bytes": True,
        "use_str": False,
        "subprotocols": ("chat.v2", "chat"),
    }
    assert factory.allowed_origins is None  # the class's own
    assert factory.with_options(allowed_origins=["null"]).allowed_origins == ("null",)
    assert repr(factory).startswith("WebsocketMapper.with_options(use_bytes=True")
    assert factory.mapper is WebsocketMapper


def test_use_str_false_reaches_an_asgi_view_as_bytes():
    """The uWSGI spelling works on the ASGI mapper, end to end."""
    received: list[Any] = []

    async def view(ws: Any) -> None:
        received.append(await ws.recv())

    app = serve(view, mapper=WebsocketMapper.options(use_str=False))
    websocket_conversation(app, "/ws", ["text"])
    assert received == [b"text"]


def test_a_class_view_takes_a_configured_mapper():
    """A WebsocketConnectionView's __view_mapper__ may be a configured mapper."""
    received: list[Any] = []

    class Feed(WebsocketConnectionView):
        __view_mapper__ = WebsocketMapper.with_options(
            use_bytes=True, subprotocols=["feed"]
        )

        def on_message(self, message: Any) -> None:
            received.append((message, self.ws.subprotocol))

    app = serve(Feed)
    sent = websocket_conversation(app, "/ws", ["hi"], subprotocols=["feed"])
    assert sent[0] == {
        "type": "websocket.accept",
        "subprotocol": "feed",
    }
    assert received == [(b"hi", "feed")]


@pytest.mark.parametrize("mapper", MAPPERS, ids=lambda m: m.__name__)
def test_request_none_is_not_a_websocket(mapper):
    """view(context, None), as in Pyramid's tests, answers 400 (no AttributeError)."""

    async def view(ws):  # pragma: no cover - never reached
        await ws.send("never")

    answer = mapper(attr=None)(view)(None, None)
    assert answer.status_int == 400


@pytest.mark.parametrize("mapper", MAPPERS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    ("name", "value"), [("use_str", False), ("use_bytes", True)], ids=str
)
def test_either_spelling_assigned_on_the_class_after_import(mapper, name, value):
    """Mapper.use_str = False (or use_bytes = True) after import: both agree."""
    setattr(mapper, name, value)
    try:
        for made in (mapper(attr=None), mapper.options()(attr=None)):
            assert (made.use_bytes, made.use_str) == (True, False)

        class Sub(mapper):
            pass

        assert (Sub.use_bytes, Sub.use_str) == (True, False)
    finally:
        del mapper.use_bytes, mapper.use_str  # back to the base's defaults
    assert (mapper.use_bytes, mapper.use_str) == (False, True)


@pytest.mark.parametrize("mapper", MAPPERS, ids=lambda m: m.__name__)
def test_either_spelling_assigned_on_a_mapper_instance(mapper):
    """Assigning one spelling on a mapper made sets the other to its opposite."""
    made = mapper(attr=None)
    made.use_str = False
    assert made.use_bytes is True
    made.use_bytes = False
    assert made.use_str is True


def test_use_str_false_on_the_asgi_mapper_class_reaches_the_view_as_bytes():
    """WebsocketMapper.use_str = False after import: text arrives as bytes."""
    received: list[Any] = []

    async def view(ws: Any) -> None:
        received.append(await ws.recv())

    WebsocketMapper.use_str = False
    try:
        app = serve(view, mapper=WebsocketMapper)
    finally:
        del WebsocketMapper.use_bytes, WebsocketMapper.use_str
    websocket_conversation(app, "/ws", ["text"])
    assert received == [b"text"]
