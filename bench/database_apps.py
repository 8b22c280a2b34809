"""The applications bench/database.py measures: one tutorial-shaped Pyramid app,
one Starlette app, both reading one page by id and then waiting in PostgreSQL.

The Pyramid app has the shape of Pyramid's SQLAlchemy tutorial (wiki2): a
route factory that gets the page through ``request.dbsession`` before the
view runs, pyramid_tm with zope.sqlalchemy (the commit runs in a tween), a
plain view; the engine is SQLAlchemy's own ``engine_from_config`` and the
session a plain ``sessionmaker``: only the URL says whether the driver is
asyncio's (``postgresql+asyncpg``) or a blocking one (``postgresql+psycopg``).
The Starlette app is the async-native way: ``AsyncSession`` on asyncpg.

``GET /page/{id}?sleep=S`` answers the page's name and text after the query
and, when ``S`` is given, ``select pg_sleep(S)``, in one transaction.

The servers read their settings from the environment: ``BENCH_DB_URL``,
``BENCH_DB_POOL`` (the pool's size, no overflow), ``BENCH_DB_MODE``
(``aiopyramid.mode``), ``BENCH_DB_THREADS``
(``aiopyramid.executor.max_workers``) and ``BENCH_DB_WATCHDOG``
(``aiopyramid.watchdog.seconds``, left to its default when unset).
"""

from __future__ import annotations

import os
from typing import Any

import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from sqlalchemy import String, engine_from_config, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

#: The pages made by :func:`create_tables`; requests ask for page 1.
PAGES = 100
#: What the benchmark's wait runs (its one bound parameter: seconds).
SLEEP = text("select pg_sleep(:seconds)")


class Base(DeclarativeBase):
    """The tutorial's declarative base."""


class Page(Base):
    """A wiki page."""

    __tablename__ = "pages"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    data: Mapped[str] = mapped_column(String(1000))


def create_tables(sync_engine: Any) -> None:
    """The ``pages`` table, afresh, with :data:`PAGES` pages."""
    with sync_engine.begin() as connection:
        Base.metadata.drop_all(connection)
        Base.metadata.create_all(connection)
        connection.execute(
            Page.__table__.insert(),
            [
                {"id": n, "name": f"Page{n}", "data": f"welcome to page {n}"}
                for n in range(1, PAGES + 1)
            ],
        )


def sleep_seconds(params: Any) -> float:
    """The ``sleep`` query parameter, 0 when absent."""
    return float(params.get("sleep", 0))


# -- Pyramid -------------------------------------------------------------------


class PageResource:
    """What the route factory returns: the page it found."""

    def __init__(self, page: Page) -> None:
        self.page = page


def page_factory(request: Any) -> PageResource:
    """The tutorial's route factory: the ORM query, before any view runs."""
    page = request.dbsession.get(Page, int(request.matchdict["id"]))
    if page is None:
        raise HTTPNotFound()
    return PageResource(page)


def view_page(request: Any) -> Response:
    """A plain view: the optional wait in the database, then the page."""
    seconds = sleep_seconds(request.params)
    if seconds:
        request.dbsession.execute(SLEEP, {"seconds": seconds})
    page = request.context.page
    return Response(f"{page.name}: {page.data}")


def main(global_config: Any = None, *, aiopyramid: bool = True, **settings: Any):
    """The Pyramid app on the engine ``sqlalchemy.url`` names, with or without
    aiopyramid included."""
    settings.setdefault("tm.manager_hook", "pyramid_tm.explicit_manager")
    engine = engine_from_config(settings, "sqlalchemy.")
    factory = sessionmaker(bind=engine)
    with Configurator(settings=settings) as config:
        config.include("pyramid_tm")
        if aiopyramid:
            config.include("aiopyramid")

        def dbsession(request: Any) -> Any:
            session = factory()
            zope.sqlalchemy.register(session, transaction_manager=request.tm)
            return session

        config.add_request_method(dbsession, reify=True)
        config.add_route("page", r"/page/{id:\d+}", factory=page_factory)
        config.add_view(view_page, route_name="page")
    return config.make_wsgi_app()


def environment_settings() -> dict[str, str]:
    """The app's settings from ``BENCH_DB_*`` (see the module's docstring)."""
    settings = {
        "sqlalchemy.url": os.environ["BENCH_DB_URL"],
        "sqlalchemy.pool_size": os.environ.get("BENCH_DB_POOL", "100"),
        "sqlalchemy.max_overflow": "0",
        "aiopyramid.mode": os.environ.get("BENCH_DB_MODE", "greenlet"),
    }
    if "BENCH_DB_THREADS" in os.environ:
        settings["aiopyramid.executor.max_workers"] = os.environ["BENCH_DB_THREADS"]
    # Left out, the watchdog keeps its default; settings the code does not
    # know are ignored, as Pyramid ignores every unknown setting.
    if "BENCH_DB_WATCHDOG" in os.environ:
        settings["aiopyramid.watchdog.seconds"] = os.environ["BENCH_DB_WATCHDOG"]
    return settings


def from_environment() -> Any:
    """For AsyncGunicornWorker: ``bench.database_apps:from_environment()``."""
    return main(**environment_settings())


def wsgi_from_environment() -> Any:
    """Plain Pyramid, no aiopyramid (gunicorn ``gthread``)."""
    return main(aiopyramid=False, **environment_settings())


# -- Starlette -----------------------------------------------------------------


def starlette_from_environment() -> Any:
    """The same endpoint in Starlette on ``AsyncSession`` (uvicorn ``--factory``)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    engine = create_async_engine(
        os.environ["BENCH_DB_URL"],
        pool_size=int(os.environ.get("BENCH_DB_POOL", "100")),
        max_overflow=0,
    )
    factory = async_sessionmaker(engine)

    async def page(request: Any) -> PlainTextResponse:
        seconds = sleep_seconds(request.query_params)
        async with factory() as session, session.begin():
            found = await session.get(Page, request.path_params["id"])
            if found is None:
                return PlainTextResponse("Not Found", status_code=404)
            if seconds:
                await session.execute(SLEEP, {"seconds": seconds})
            body = f"{found.name}: {found.data}"
        return PlainTextResponse(body)

    return Starlette(routes=[Route("/page/{id:int}", page)])
