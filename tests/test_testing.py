"""Tests of aiopyramid.testing.SynchronousApp with WebTest."""

from __future__ import annotations

import asyncio

import pytest
from pyramid.config import Configurator
from pyramid.response import Response
from webtest import TestApp

from aiopyramid.exceptions import ScopeError
from aiopyramid.testing import SynchronousApp
from tests.harness.inprocess import make_app
from tests.harness.servers import import_required


async def hello(request):
    await asyncio.sleep(0)
    return {"hello": request.params.get("name", "world")}


def echo(request):
    return Response(request.body)


def streamed(request):
    def chunks():
        yield b"one "
        yield b"two"

    return Response(app_iter=chunks())


def app():
    def setup(config):
        config.add_view(hello, name="hello", renderer="json")
        config.add_view(echo, name="echo")
        config.add_view(streamed, name="stream")

    return make_app(setup)


def test_webtest_drives_coroutine_and_plain_views():
    """WebTest gets answers from coroutine views, executor views and streams."""
    with SynchronousApp(app()) as wrapped:
        client = TestApp(wrapped)
        assert client.get("/hello", {"name": "you"}).json == {"hello": "you"}
        assert client.post("/echo", b"body").body == b"body"
        assert client.get("/stream").body == b"one two"
    assert wrapped.loop.is_closed()


def test_given_loop_is_left_open():
    """A loop passed in belongs to the caller and is not closed."""
    loop = asyncio.new_event_loop()
    try:
        with SynchronousApp(app(), loop=loop) as wrapped:
            assert TestApp(wrapped).get("/hello").json == {"hello": "world"}
        assert not loop.is_closed()
    finally:
        loop.close()


def test_calling_from_a_running_loop_says_what_to_do():
    """Called while its loop runs, SynchronousApp explains the alternative."""
    loop = asyncio.new_event_loop()
    wrapped = SynchronousApp(app(), loop=loop)

    async def inside():
        with pytest.raises(ScopeError, match="spawn_greenlet"):
            wrapped({}, lambda *a: None)

    try:
        loop.run_until_complete(inside())
    finally:
        loop.close()


def test_sqlalchemy_sync_api_on_an_asyncio_driver_works_in_the_greenlet_mode(tmp_path):
    """A plain view's sync queries on aiosqlite yield to the loop, as in a server."""
    sqlalchemy = import_required("sqlalchemy")
    import_required("aiosqlite")
    from sqlalchemy.ext.asyncio import AsyncEngine

    engine = sqlalchemy.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")

    def answer(request):
        with engine.connect() as connection:
            return {"answer": connection.scalar(sqlalchemy.text("select 41 + 1"))}

    with Configurator(settings={"aiopyramid.mode": "greenlet"}) as config:
        config.include("aiopyramid")
        config.add_route("answer", "/")
        config.add_view(answer, route_name="answer", renderer="json")
    with SynchronousApp(config.make_wsgi_app()) as wrapped:
        assert TestApp(wrapped).get("/").json == {"answer": 42}
        # The driver's connections belong to this loop: closed on it.
        wrapped.loop.run_until_complete(AsyncEngine(engine).dispose())
