"""An application shaped like Pyramid's SQLAlchemy tutorial (wiki2).

What froze the worker there, all here: a route factory and a security policy
that query through ``request.dbsession``, pyramid_tm with zope.sqlalchemy
(the commit runs in a tween), plain views that read and write, and a
coroutine view that reads through the sync session and then awaits.  The
engine is SQLAlchemy's own ``engine_from_config``: only its URL says
whether the driver is asyncio's (``sqlite+aiosqlite``,
``postgresql+asyncpg``) or a blocking one (``postgresql+psycopg``).

``main`` is a PasteDeploy app factory; ``settings`` name the URL
(``sqlalchemy.url``) and ``aiopyramid.mode``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import sqlalchemy.exc
import zope.sqlalchemy
from pyramid.authorization import ACLHelper, Allow, Everyone
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from sqlalchemy import ForeignKey, String, engine_from_config, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


class Base(DeclarativeBase):
    """The tutorial's declarative base."""


class User(Base):
    """A wiki user."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    role: Mapped[str] = mapped_column(String(20))


class Page(Base):
    """A wiki page."""

    __tablename__ = "pages"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    data: Mapped[str] = mapped_column(String(1000))
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class Counter(Base):
    """A row two serializable transactions fight over."""

    __tablename__ = "counters"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column()


class Increment(Base):
    """What each committed increment saw: the value it wrote, its attempt."""

    __tablename__ = "increments"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column()
    attempt: Mapped[int] = mapped_column()


class PageResource:
    """What the tutorial's ``page_factory`` returns: the page and its ACL."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.__acl__ = [(Allow, Everyone, "view")]


def page_factory(request: Any) -> PageResource:
    """The tutorial's route factory: a query before any view runs."""
    name = request.matchdict["pagename"]
    page = request.dbsession.scalars(select(Page).where(Page.name == name)).first()
    if page is None:
        raise HTTPNotFound(f"no page {name}")
    return PageResource(page)


class SecurityPolicy:
    """The tutorial's policy: the identity is a user row, looked up by name."""

    def identity(self, request: Any) -> User | None:
        """The user named by the ``X-User`` header, read from the database."""
        name = request.headers.get("X-User")
        if name is None:
            return None
        return request.dbsession.scalars(select(User).where(User.name == name)).first()

    def authenticated_userid(self, request: Any) -> int | None:
        """The user's id."""
        user = request.identity
        return None if user is None else user.id

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        """Everyone may view; the ACL says so."""
        return ACLHelper().permits(context, [Everyone], permission)

    def remember(self, request: Any, userid: Any, **kw: Any) -> list[Any]:
        """No login in this app."""
        return []

    def forget(self, request: Any, **kw: Any) -> list[Any]:
        """No logout in this app."""
        return []


def view_page(request: Any) -> Response:
    """A plain view: the page the factory found, and who reads it."""
    user = request.identity
    reader = "anonymous" if user is None else user.name
    return Response(
        f"{request.context.page.name}: {request.context.page.data} (read by {reader})"
    )


def add_page(request: Any) -> Response:
    """A plain view that writes: one page, committed by pyramid_tm.

    With ``?first=NAME`` it adds and flushes that page first (lost with the
    rest if the second fails).
    """
    name = request.matchdict["pagename"]
    if "first" in request.params:
        first = request.params["first"]
        request.dbsession.add(Page(name=first, data="", creator_id=1))
        request.dbsession.flush()
    request.dbsession.add(Page(name=name, data=f"about {name}", creator_id=1))
    request.dbsession.flush()
    return Response(f"added {name}")


def add_then_fail(request: Any) -> Response:
    """A plain view that flushes a page and then fails: nothing is committed."""
    name = request.matchdict["pagename"]
    request.dbsession.add(Page(name=name, data="never", creator_id=1))
    request.dbsession.flush()
    raise RuntimeError("failed after the flush")


async def async_page(request: Any) -> Response:
    """A coroutine view: the factory's query, one through the sync session, an await."""
    count = request.dbsession.scalar(text("select count(*) from pages"))
    await asyncio.sleep(0.05)
    return Response(f"{request.context.page.name} of {count}")


def sleep_in_database(request: Any) -> Response:
    """A plain view that waits in the database (SQLite has no sleep: a timer).

    With ``?add=NAME`` it first adds a page of that name and flushes it.
    """
    seconds = float(request.params.get("s", "0.1"))
    dbsession = request.dbsession
    if "add" in request.params:
        dbsession.add(Page(name=request.params["add"], data="", creator_id=1))
        dbsession.flush()
    if dbsession.bind.dialect.name == "postgresql":
        dbsession.execute(text("select pg_sleep(:s)"), {"s": seconds})
    else:  # the wait, as a query would, in the driver's own way
        dbsession.execute(text("select 1"))
        from aiopyramid.helpers import synchronize

        synchronize(asyncio.sleep)(seconds)
    return Response("slept")


async def invalidate(request: Any) -> Response:
    """Invalidate the connection and query again, on the loop's thread.

    A coroutine view (its code runs in a request greenlet on the loop in
    every mode): on a pool thread SQLAlchemy cannot close an invalidated
    asyncio connection gracefully, as it makes its shielded future there.
    """
    await asyncio.sleep(0)
    dbsession = request.dbsession
    dbsession.connection().invalidate()
    dbsession.rollback()
    return Response(f"after invalidation: {dbsession.scalar(text('select 41 + 1'))}")


class LoopLag:
    """The longest the loop's timers came late since the first request.

    A task wakes every 10 ms and measures how late it woke: what a loop held
    by blocking code costs every other request.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring, once, on the running loop."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._measure())

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - before - 0.01)


LAG = LoopLag()


async def lag(request: Any) -> Response:
    """Start the lag measurement, or say the worst lag so far and reset it."""
    started = LAG.task is not None
    LAG.start()
    worst, LAG.worst = LAG.worst, 0.0
    return Response(f"{worst if started else -1:.4f}")


def pool_status(request: Any) -> Response:
    """How many of the engine's connections are checked out."""
    return Response(str(request.registry.engine.pool.checkedout()))


async def health(request: Any) -> Response:
    """Touches no database: how quickly the loop answers."""
    return Response("ok")


def increment(request: Any) -> Response:
    """Read the counter, wait ``?s`` seconds in the database, write it plus one,
    in a SERIALIZABLE transaction: two at once conflict, and pyramid_retry
    retries the one PostgreSQL refuses."""
    dbsession = request.dbsession
    dbsession.connection(execution_options={"isolation_level": "SERIALIZABLE"})
    counter = dbsession.get(Counter, 1)
    dbsession.execute(text("select pg_sleep(:s)"), {"s": float(request.params["s"])})
    counter.value += 1
    attempt = request.environ["retry.attempt"]  # pyramid_retry's count, from 0
    dbsession.add(Increment(value=counter.value, attempt=attempt))
    dbsession.flush()
    return Response(f"{counter.value} at attempt {attempt}")


def add_twice(request: Any) -> Response:
    """Add a page, then the same again inside a savepoint: only the second is
    rolled back (to the savepoint)."""
    name = request.matchdict["pagename"]
    dbsession = request.dbsession
    dbsession.add(Page(name=name, data="first", creator_id=1))
    dbsession.flush()
    savepoint = request.tm.savepoint()
    dbsession.add(Page(name=name, data="second", creator_id=1))
    try:
        dbsession.flush()
    except sqlalchemy.exc.IntegrityError:
        savepoint.rollback()
        return Response(f"kept the first {name}")
    return Response("both kept")  # pragma: no cover - a unique name is unique


def conflict(exc: Exception, request: Any) -> Response:
    """The exception view of a unique violation: 409, the transaction aborted."""
    return Response(f"conflict: {type(exc.orig).__name__}", status=409)


def slow_query(request: Any) -> Response:
    """A query that runs past its statement_timeout (``?ms``)."""
    dbsession = request.dbsession
    timeout = int(request.params.get("ms", "100"))
    dbsession.execute(text(f"set local statement_timeout = {timeout}"))
    dbsession.execute(text("select pg_sleep(5)"))
    return Response("never")  # pragma: no cover - the timeout comes first


def where(request: Any) -> Response:
    """Which thread ran the view."""
    return Response(threading.current_thread().name)


#: Each route's pattern (named after its first segment), view and options.
VIEWS: list[tuple[str, Any, dict[str, Any]]] = [
    ("/page/{pagename}", view_page, {"factory": page_factory, "permission": "view"}),
    ("/async/{pagename}", async_page, {"factory": page_factory, "permission": "view"}),
    ("/add/{pagename}", add_page, {"request_method": "POST"}),
    ("/fail/{pagename}", add_then_fail, {"request_method": "POST"}),
    ("/twice/{pagename}", add_twice, {"request_method": "POST"}),
    ("/increment", increment, {"request_method": "POST"}),
    ("/sleep", sleep_in_database, {}),
    ("/invalidate", invalidate, {}),
    ("/slow_query", slow_query, {}),
    ("/where", where, {}),
    ("/lag", lag, {}),
    ("/pool", pool_status, {}),
    ("/health", health, {}),
]


def main(global_config: Any = None, **settings: Any) -> Any:
    """The app, on the engine ``sqlalchemy.url`` names."""
    settings.setdefault("tm.manager_hook", "pyramid_tm.explicit_manager")
    settings.setdefault("retry.attempts", "3")
    engine = engine_from_config(settings, "sqlalchemy.")
    factory = sessionmaker(bind=engine)
    with Configurator(settings=settings) as config:
        config.include("pyramid_tm")
        config.include("pyramid_retry")
        config.include("aiopyramid")
        config.set_security_policy(SecurityPolicy())

        def dbsession(request: Any) -> Any:
            session = factory()
            zope.sqlalchemy.register(session, transaction_manager=request.tm)
            return session

        config.add_request_method(dbsession, reify=True)
        for pattern, view, options in VIEWS:
            name = pattern.split("/")[1]
            view_options = dict(options)
            config.add_route(name, pattern, factory=view_options.pop("factory", None))
            config.add_view(view, route_name=name, **view_options)
        config.add_view(conflict, context=sqlalchemy.exc.IntegrityError)
        config.registry.engine = engine
    app = config.make_wsgi_app()
    app.engine = engine  # for the tests: create the tables, count the rows
    return app


def create_tables(sync_engine: Any) -> None:
    """The tables, one user (id 1, "ada") and the front page."""
    with sync_engine.begin() as connection:
        Base.metadata.drop_all(connection)
        Base.metadata.create_all(connection)
        connection.execute(User.__table__.insert(), [{"name": "ada", "role": "editor"}])
        connection.execute(
            Page.__table__.insert(),
            [{"name": "FrontPage", "data": "welcome", "creator_id": 1}],
        )
        connection.execute(Counter.__table__.insert(), [{"id": 1, "value": 0}])


def from_environment() -> Any:
    """The app as the server tests start it (``tests.apps.wiki:from_environment()``).

    ``WIKI_URL`` is the engine's URL, ``WIKI_MODE`` the ``aiopyramid.mode``,
    ``WIKI_POOL`` the pool's size (no overflow); ``WIKI_THREADS`` sizes the
    plain-view pool.
    """
    import os

    settings = {
        "sqlalchemy.url": os.environ["WIKI_URL"],
        "sqlalchemy.pool_size": os.environ.get("WIKI_POOL", "5"),
        "sqlalchemy.max_overflow": "0",
        "sqlalchemy.pool_timeout": os.environ.get("WIKI_POOL_TIMEOUT", "30"),
        "aiopyramid.mode": os.environ.get("WIKI_MODE", "executor"),
    }
    if "WIKI_THREADS" in os.environ:
        settings["aiopyramid.executor.max_workers"] = os.environ["WIKI_THREADS"]
    if dialect_is_postgresql(settings["sqlalchemy.url"]):
        settings["sqlalchemy.pool_pre_ping"] = "true"
    app = main(**settings)
    return app


def dialect_is_postgresql(url: str) -> bool:
    """Whether ``url`` names PostgreSQL."""
    return url.startswith("postgresql")
