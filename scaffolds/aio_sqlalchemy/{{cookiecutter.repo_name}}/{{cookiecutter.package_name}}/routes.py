"""The URLs of {{ cookiecutter.project_name }}, and the route factory of a note's."""

from pyramid.httpexceptions import HTTPNotFound

from .models import Note


def includeme(config):
    """Add the static view and the routes."""
    config.add_static_view("static", "static", cache_max_age=3600)
    config.add_route("home", "/")
    config.add_route("add_note", "/notes", request_method="POST")
    config.add_route("note", r"/notes/{id:\d+}", factory=note_factory)
    config.add_route("api_notes", "/api/notes")


class NoteResource:
    """The context of a note's URL: the note, found before any view runs."""

    def __init__(self, note):
        self.note = note


def note_factory(request):
    """Find the note the URL names, or answer 404.

    A query in a route factory, as in Pyramid's wiki tutorial: in the
    greenlet mode it yields to the event loop, like the views' queries.
    """
    note = request.dbsession.get(Note, int(request.matchdict["id"]))
    if note is None:
        raise HTTPNotFound(f"There is no note {request.matchdict['id']}.")
    return NoteResource(note)
