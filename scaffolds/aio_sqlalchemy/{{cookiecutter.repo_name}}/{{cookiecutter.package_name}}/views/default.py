"""The views of {{ cookiecutter.project_name }}: plain views and a coroutine view.

They all query through ``request.dbsession``, SQLAlchemy's ordinary sync
ORM.  With ``aiopyramid.mode = greenlet`` and an asyncio driver, each query
waits by yielding to the event loop: while one request waits for the
database, the worker serves the others, with no thread.  Blocking code that
does not go through the asyncio driver (another library's sync network
client, a long computation) would hold the loop here: give such a view
``mapper=CoroutineOrExecutorMapper`` (from ``aiopyramid.config``) to run it
on a thread.
"""

import asyncio

from pyramid.httpexceptions import HTTPBadRequest, HTTPFound
from pyramid.view import view_config
from sqlalchemy import select

from ..models.note import TEXT_LENGTH, Note

HOME = "{{ cookiecutter.package_name }}:templates/home.jinja2"
NOTE = "{{ cookiecutter.package_name }}:templates/note.jinja2"
#: How many notes the home page lists, newest first.
SHOWN = 50


def newest_notes(request):
    """The newest notes, for the home page."""
    query = select(Note).order_by(Note.id.desc()).limit(SHOWN)
    return request.dbsession.scalars(query).all()


@view_config(route_name="home", renderer=HOME)
def home(request):
    """A plain view: the newest notes, and the form that adds one."""
    return {"notes": newest_notes(request), "text": "", "error": None}


@view_config(route_name="add_note", renderer=HOME)
def add_note(request):
    """A plain view that writes: pyramid_tm commits the note after it returns."""
    text = request.POST.get("text", "").strip()
    error = None
    if not text:
        error = "Write something first."
    elif len(text) > TEXT_LENGTH:
        error = f"A note has at most {TEXT_LENGTH} characters."
    if error is not None:
        request.response.status = 400
        return {"notes": newest_notes(request), "text": text, "error": error}
    note = Note(text=text)
    request.dbsession.add(note)
    request.dbsession.flush()  # the INSERT, which gives the note its id
    return HTTPFound(request.route_url("note", id=note.id))


@view_config(route_name="note", renderer=NOTE)
def note(request):
    """A plain view of the note that the route factory found (``request.context``)."""
    return {"note": request.context.note}


@view_config(route_name="api_notes", renderer="json")
async def api_notes(request):
    """A coroutine view: it awaits, then queries through the same sync session.

    ``?after=ID`` lists only the notes newer than that one.  The sleep
    stands for what a coroutine view awaits: a call to another service with
    an asyncio client, say.  A request holds its database connection from
    its first query until pyramid_tm commits, so await slow things before
    the first query, as here.
    """
    after = request.params.get("after", "0")
    if not after.isdigit():
        raise HTTPBadRequest("after must be a note's id, e.g. ?after=12")
    await asyncio.sleep(0.01)
    query = select(Note).where(Note.id > int(after)).order_by(Note.id)
    notes = request.dbsession.scalars(query).all()
    return {"notes": [note.to_json() for note in notes]}
