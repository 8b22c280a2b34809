"""The tutorial's application: notes in a database, pushed over a websocket.

* ``GET /`` (a plain view) serves the page, ``notes.html``;
* ``GET /notes`` (a coroutine view) reads the notes with SQLAlchemy's
  asyncio API;
* ``POST /notes`` (a coroutine view) stores one and pushes it to every open
  websocket;
* ``GET /notes.csv`` (a plain view) exports them with SQLAlchemy's ordinary
  blocking API, on a pool thread;
* ``/feed`` is the websocket that receives new notes as they arrive.

The database is the one ``sqlalchemy.url`` names in the ini file: SQLite
through aiosqlite, or PostgreSQL through asyncpg.  ``python notes.py
development.ini`` creates its table.
"""

import asyncio
import csv
import io
import sys
from pathlib import Path

from pyramid.config import Configurator
from pyramid.paster import get_appsettings
from pyramid.response import FileResponse, Response
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert, select
from sqlalchemy.ext.asyncio import async_engine_from_config

from aiopyramid.websocket.exceptions import WebsocketClosed
from aiopyramid.websocket.view import WebsocketConnectionView

#: The page, in the same folder as this module.
PAGE = Path(__file__).with_name("notes.html")

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("text", Text, nullable=False),
)

#: The open feeds; only code on the event loop touches this set.
feeds = set()


def websocket_mapper():
    """The websocket mapper for the server this process runs under."""
    try:
        import uwsgi  # noqa: F401  (importable only inside uWSGI)
    except ImportError:
        from aiopyramid.websocket.config import WebsocketMapper as mapper
    else:
        from aiopyramid.websocket.config import UWSGIWebsocketMapper as mapper
    return mapper


def page(request):
    """The page: a plain view, run on a thread like any blocking code."""
    return FileResponse(PAGE, request, content_type="text/html")


async def list_notes(request):
    """Read every note, without blocking the loop."""
    async with request.registry.engine.connect() as db:
        result = await db.execute(select(notes).order_by(notes.c.id))
        rows = result.all()
    return {"notes": [{"id": id_, "text": text} for id_, text in rows]}


async def add_note(request):
    """Store a note, then push it to every open feed."""
    text = request.json_body["text"]
    async with request.registry.engine.begin() as db:
        result = await db.execute(insert(notes).values(text=text))
    for ws in list(feeds):
        try:
            await ws.send(text)
        except WebsocketClosed:
            feeds.discard(ws)
    request.response.status_int = 201
    return {"id": result.inserted_primary_key.id, "text": text}


def export_csv(request):
    """Export the notes with blocking code: aiopyramid runs it on a thread.

    The same engine's blocking API: on this thread, each query runs on the
    event loop while the thread waits for it.
    """
    with request.registry.engine.sync_engine.connect() as db:
        rows = db.execute(select(notes).order_by(notes.c.id)).all()
    out = io.StringIO()
    csv.writer(out).writerows([("id", "text"), *rows])
    return Response(out.getvalue(), content_type="text/csv")


class NoteFeed(WebsocketConnectionView):
    """Sends each new note to the client; the client need not say anything."""

    async def on_open(self):
        feeds.add(self.ws)

    def on_close(self):
        feeds.discard(self.ws)


def main(global_config, **settings):
    """The WSGI application, made from the settings of the ini file."""
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        # The sqlalchemy.* settings: the URL, and the pool's size.
        config.registry.engine = async_engine_from_config(settings)
        config.add_route("page", "/")
        config.add_view(page, route_name="page")
        config.add_route("notes", "/notes")
        config.add_view(
            list_notes,
            route_name="notes",
            request_method="GET",
            renderer="json",
        )
        config.add_view(
            add_note,
            route_name="notes",
            request_method="POST",
            renderer="json",
        )
        config.add_route("export", "/notes.csv")
        config.add_view(export_csv, route_name="export")
        config.add_route("feed", "/feed")
        config.add_view(NoteFeed, route_name="feed", mapper=websocket_mapper())
    return config.make_wsgi_app()


async def create_table(settings):
    """Create the notes table, unless it exists."""
    engine = async_engine_from_config(settings)
    async with engine.begin() as db:
        await db.run_sync(metadata.create_all)
    await engine.dispose()


if __name__ == "__main__":
    # python notes.py development.ini: a command, outside any server, so it
    # runs an event loop of its own for the asyncio driver.
    asyncio.run(create_table(get_appsettings(sys.argv[1])))
