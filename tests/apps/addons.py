"""Add-ons with coroutine views under the worker (``tests.apps.addons:main()``).

pyramid_tm with SQLAlchemy (sync sessions, and the asyncio API with
aiosqlite), pyramid_jinja2, pyramid_retry and pyramid_exclog.

The SQLite file is named by ``AIOPYRAMID_TEST_DB``.  ``AIOPYRAMID_TEST_TM_HOOK``
(a dotted name) sets ``tm.manager_hook``, to run the app as it would be
without aiopyramid's default.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import transaction
import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.response import Response
from pyramid_retry import mark_error_retryable
from sqlalchemy import Column, Integer, String, create_engine, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import declarative_base, sessionmaker

#: Says in the server's log (its stderr) when a slow write begins to wait.
log = logging.getLogger("tests.apps.addons")
log.addHandler(logging.StreamHandler(sys.stderr))
log.setLevel(logging.INFO)
Base = declarative_base()
DB = os.environ.get("AIOPYRAMID_TEST_DB", "/tmp/aiopyramid-addons.sqlite")


class Note(Base):
    """One row written by a request."""

    __tablename__ = "notes"
    id = Column(Integer, primary_key=True)
    text = Column(String(100), nullable=False)


engine = create_engine(f"sqlite:///{DB}")
Base.metadata.create_all(engine)
session_factory = sessionmaker(bind=engine)
async_engine = create_async_engine(f"sqlite+aiosqlite:///{DB}")


def dbsession(request):
    """A session joined to this request's transaction (pyramid_tm's request.tm)."""
    session = session_factory()
    zope.sqlalchemy.register(session, transaction_manager=request.tm)
    return session


class Retryable(Exception):
    """An error pyramid_retry retries."""


mark_error_retryable(Retryable)
ATTEMPTS: dict[str, int] = {}


def write(request):
    """A plain view (executor thread): add a note; fail afterwards if asked."""
    request.dbsession.add(Note(text=request.params["text"]))
    request.dbsession.flush()
    if "fail" in request.params:
        raise RuntimeError("failing after the write")
    return Response("written")


async def write_slowly(request):
    """A coroutine view: add a note, wait, then let pyramid_tm commit it.

    Answers whether the request still has the transaction it began with.
    """
    began = request.tm.get()
    request.dbsession.add(Note(text=request.params["text"]))
    log.info("%s written, waiting", request.params["text"])
    await asyncio.sleep(float(request.params.get("s", "0.5")))
    return Response("same transaction" if request.tm.get() is began else "swapped")


async def write_and_fail(request):
    """A coroutine view: add a note, then fail (the request must roll back)."""
    request.dbsession.add(Note(text=request.params["text"]))
    raise RuntimeError("failing coroutine view")


async def read_async(request):
    """A coroutine view reading the notes with SQLAlchemy's asyncio API."""
    async with async_engine.connect() as connection:
        rows = await connection.execute(select(Note.text).order_by(Note.id))
        texts = [row[0] for row in rows]
    return Response(json_body=texts)


async def greet(request):
    """A coroutine view whose dict is rendered by a Jinja2 template."""
    await asyncio.sleep(0)
    return {"greeting": "Hello", "name": request.params.get("name", "world")}


async def flaky(request):
    """Fail with a retryable error until the third attempt."""
    key = request.params["key"]
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    await asyncio.sleep(0)
    if ATTEMPTS[key] < 3:
        raise Retryable(f"attempt {ATTEMPTS[key]}")
    return Response(f"succeeded on attempt {ATTEMPTS[key]}")


async def crash(request):
    """A coroutine view whose awaited coroutine fails."""

    async def inner():
        await asyncio.sleep(0)
        raise ValueError("crashed in a coroutine view")

    await inner()


async def ahello(request):
    """Still serving."""
    return Response("Hello coroutine")


def main(global_config=None, **settings):
    """The add-ons application."""
    settings.setdefault("retry.attempts", "3")
    settings.setdefault("exclog.extra_info", "true")
    hook = os.environ.get("AIOPYRAMID_TEST_TM_HOOK")
    if hook:
        settings["tm.manager_hook"] = hook
    with Configurator(settings=settings) as config:
        config.include("pyramid_retry")
        config.include("pyramid_tm")
        config.include("pyramid_exclog")
        config.include("pyramid_jinja2")
        config.include("aiopyramid")
        config.add_request_method(dbsession, reify=True)
        for name, view in {
            "write": write,
            "write_slowly": write_slowly,
            "write_and_fail": write_and_fail,
            "read": read_async,
            "flaky": flaky,
            "crash": crash,
            "ahello": ahello,
        }.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_route("greet", "/greet")
        config.add_view(greet, route_name="greet", renderer="templates/greeting.jinja2")
    # pyramid_exclog logs to "exc_logger": let its records reach the log file.
    exc_logger = logging.getLogger("exc_logger")
    exc_logger.addHandler(logging.StreamHandler(sys.stderr))
    exc_logger.setLevel(logging.ERROR)
    return config.make_wsgi_app()


def global_manager(request):
    """What pyramid_tm does without a hook: the thread's transaction manager."""
    return transaction.manager
