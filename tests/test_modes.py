"""``aiopyramid.mode``: where a request's plain code runs, and SQLAlchemy's sync
API on an asyncio driver from every kind of plain code, in every mode.

In process, through the ASGI bridge (as any ASGI server would call it), on
a tutorial-shaped application (:mod:`tests.apps.wiki`) on aiosqlite.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from pyramid.exceptions import ConfigurationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aiopyramid.asgi import make_asgi_app
from tests.apps import wiki
from tests.harness.inprocess import make_app
from tests.harness.servers import UNIT

pytestmark = pytest.mark.database
MODES = ["executor", "greenlet", "thread"]


def wiki_app(tmp_path, mode: str):
    """The wiki on a fresh aiosqlite file, in ``mode``."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'wiki.sqlite'}"
    return wiki.main(
        **{
            "sqlalchemy.url": url,
            "sqlalchemy.pool_size": "5",
            "sqlalchemy.max_overflow": "0",
            "sqlalchemy.pool_timeout": str(int(10 * UNIT)),
            "aiopyramid.mode": mode,
        }
    )


async def prepared(app) -> AsyncEngine:
    """The app's engine, as an AsyncEngine, with the tables made."""
    engine = AsyncEngine(app.engine)
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: wiki.create_tables(sync.engine))
    return engine


async def count_pages(engine: AsyncEngine) -> int:
    """Rows in the pages table."""
    async with engine.connect() as connection:
        return (await connection.execute(text("select count(*) from pages"))).scalar()


def client(app) -> httpx.AsyncClient:
    """An HTTP client calling the app through the ASGI bridge, in process."""
    transport = httpx.ASGITransport(app=make_asgi_app(app))
    return httpx.AsyncClient(
        transport=transport, base_url="http://wiki", timeout=30 * UNIT
    )


@pytest.mark.parametrize("mode", MODES)
def test_the_tutorials_code_runs_on_aiosqlite_in_every_mode(tmp_path, mode):
    """Factory, security policy, plain and coroutine views and pyramid_tm's commit
    all use the sync session on aiosqlite; 100 interleaved reads share a pool of
    5 connections, and writes commit."""
    app = wiki_app(tmp_path, mode)

    async def main():
        engine = await prepared(app)
        async with client(app) as http:
            reads = [
                http.get("/page/FrontPage", headers={"X-User": "ada"})
                for _ in range(50)
            ]
            asyncs = [http.get("/async/FrontPage") for _ in range(50)]
            answers = await asyncio.gather(*reads, *asyncs)
            # Fewer writes at once than connections: in the executor mode a
            # plain view takes its connection on a pool thread, and requests
            # holding the others may be waiting for that thread.
            for batch in range(5):
                adds = [http.post(f"/add/P{batch}{n}") for n in range(4)]
                answers += await asyncio.gather(*adds)
        pages = await count_pages(engine)
        await engine.dispose()
        return answers, pages

    answers, pages = asyncio.run(main())
    assert [a.status_code for a in answers] == [200] * 120, answers[0].text
    assert {a.text for a in answers[:50]} == {"FrontPage: welcome (read by ada)"}
    assert {a.text for a in answers[50:100]} == {"FrontPage of 1"}
    assert {a.text for a in answers[100:]} == {
        f"added P{batch}{n}" for batch in range(5) for n in range(4)
    }
    assert pages == 21


@pytest.mark.parametrize("mode", MODES)
def test_a_failure_after_a_flush_rolls_back(tmp_path, mode):
    """pyramid_tm aborts on the asyncio driver too: the flushed row is gone."""
    app = wiki_app(tmp_path, mode)

    async def main():
        engine = await prepared(app)
        async with client(app) as http:
            failed = await http.post("/fail/Nope")
            ok = await http.post("/add/Yes")
        pages = await count_pages(engine)
        await engine.dispose()
        return failed, ok, pages

    failed, ok, pages = asyncio.run(main())
    assert failed.status_code == 500
    assert ok.text == "added Yes"
    assert pages == 2  # FrontPage and Yes


@pytest.mark.parametrize("mode", MODES)
def test_an_invalidated_connection_is_closed_on_the_loop(tmp_path, mode):
    """SQLAlchemy closes an invalidated connection by switching up a shielded
    future: the request goes on and answers (it used to get an empty reply)."""
    app = wiki_app(tmp_path, mode)

    async def main():
        engine = await prepared(app)
        async with client(app) as http:
            answers = await asyncio.gather(*(http.get("/invalidate") for _ in range(5)))
        await engine.dispose()
        return answers

    answers = asyncio.run(main())
    assert [a.text for a in answers] == ["after invalidation: 42"] * 5


@pytest.mark.parametrize(
    ("mode", "on_a_pool_thread"),
    [("executor", True), ("greenlet", False), ("thread", True)],
)
def test_where_plain_views_run(tmp_path, mode, on_a_pool_thread):
    """executor and thread run plain views on a pool thread; greenlet on the
    loop's own thread."""
    app = wiki_app(tmp_path, mode)

    async def main():
        async with client(app) as http:
            return (await http.get("/where")).text

    name = asyncio.run(main())
    assert (name != threading.main_thread().name) is on_a_pool_thread


def test_thread_mode_runs_tweens_and_factories_on_a_pool_thread():
    """With mode thread, a tween and a route factory run off the loop's thread,
    while a coroutine view still runs on the loop's."""
    seen = {}

    def tween_factory(handler, registry):
        def tween(request):
            seen["tween"] = threading.current_thread()
            return handler(request)

        return tween

    def factory(request):
        seen["factory"] = threading.current_thread()
        return None

    async def coroutine_view(request):
        await asyncio.sleep(0)
        seen["view"] = threading.current_thread()
        return request.response

    def setup(config):
        config.add_tween(f"{__name__}.TWEEN")
        config.add_route("r", "/", factory=factory)
        config.add_view(coroutine_view, route_name="r")

    global TWEEN
    TWEEN = tween_factory
    app = make_app(setup, **{"aiopyramid.mode": "thread"})

    async def main():
        async with client(app) as http:
            return (await http.get("/")).status_code

    assert asyncio.run(main()) == 200
    main_thread = threading.main_thread()
    assert seen["tween"] is not main_thread
    assert seen["factory"] is seen["tween"]
    assert seen["view"] is main_thread


TWEEN = None


def test_a_wrong_mode_is_a_configuration_error_that_lists_the_choices():
    """A typo in aiopyramid.mode fails at configuration time, naming the modes."""
    with pytest.raises(ConfigurationError) as caught:
        make_app(lambda config: None, **{"aiopyramid.mode": "threads"})
    message = str(caught.value)
    assert "aiopyramid.mode must be one of executor, greenlet or thread" in message
    assert "'threads'" in message
    assert "all of a request's plain code on a pool thread" in message
