"""The tutorial's application: notes kept in SQLite, pushed over a websocket.

* ``GET /`` (a plain view) serves the page, ``notes.html``;
* ``GET /notes`` (a coroutine view) reads the notes with aiosqlite;
* ``POST /notes`` (a coroutine view) stores one and pushes it to every open
  websocket;
* ``GET /notes.csv`` (a plain view) exports them with the blocking sqlite3
  module, on a pool thread;
* ``/feed`` is the websocket that receives new notes as they arrive.
"""

import csv
import io
import sqlite3
from pathlib import Path

import aiosqlite
from pyramid.config import Configurator
from pyramid.response import FileResponse, Response

from aiopyramid.websocket.exceptions import WebsocketClosed
from aiopyramid.websocket.view import WebsocketConnectionView

#: The page, in the same folder as this module.
PAGE = Path(__file__).with_name("notes.html")

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
    async with aiosqlite.connect(request.registry.settings["notes.db"]) as db:
        cursor = await db.execute("SELECT id, text FROM notes ORDER BY id")
        rows = await cursor.fetchall()
    return {"notes": [{"id": id_, "text": text} for id_, text in rows]}


async def add_note(request):
    """Store a note, then push it to every open feed."""
    text = request.json_body["text"]
    async with aiosqlite.connect(request.registry.settings["notes.db"]) as db:
        cursor = await db.execute(
            "INSERT INTO notes (text) VALUES (?)", (text,)
        )
        await db.commit()
    for ws in list(feeds):
        try:
            await ws.send(text)
        except WebsocketClosed:
            feeds.discard(ws)
    request.response.status_int = 201
    return {"id": cursor.lastrowid, "text": text}


def export_csv(request):
    """Export the notes with blocking code: aiopyramid runs it on a thread."""
    with sqlite3.connect(request.registry.settings["notes.db"]) as db:
        rows = db.execute("SELECT id, text FROM notes ORDER BY id").fetchall()
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
    with sqlite3.connect(settings["notes.db"]) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS notes"
            " (id INTEGER PRIMARY KEY, text TEXT)"
        )
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
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
