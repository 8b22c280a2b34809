"""The views, through the whole application, on the test database."""

from sqlalchemy import select

from {{ cookiecutter.package_name }}.models.note import Note


def add_notes(dbsession, *texts):
    """Store notes as another process would, and return them."""
    notes = [Note(text=text) for text in texts]
    dbsession.add_all(notes)
    dbsession.commit()
    return notes


def stored_texts(dbsession):
    return dbsession.scalars(select(Note.text).order_by(Note.id)).all()


def test_home_lists_the_notes_newest_first(testapp, dbsession):
    """The home page, a plain view, lists what is in the database."""
    add_notes(dbsession, "the first note", "the second note")
    page = testapp.get("/")
    assert page.text.index("the second note") < page.text.index("the first note")


def test_home_without_notes_says_how_to_add_some(testapp):
    """An empty database gets a page that says what to do."""
    assert "No notes yet" in testapp.get("/").text


def test_a_posted_note_is_committed_and_shown_on_its_page(testapp, dbsession):
    """The form adds a note, pyramid_tm commits it, and its page shows it."""
    form = testapp.get("/").forms["new-note"]
    form["text"] = "  bought milk  "
    page = form.submit(status=302).follow()
    assert '<blockquote id="note">bought milk</blockquote>' in page.text
    assert stored_texts(dbsession) == ["bought milk"]


def test_an_empty_note_is_refused_and_nothing_is_stored(testapp, dbsession):
    """A blank note gets the form back with an error, and no row."""
    form = testapp.get("/").forms["new-note"]
    form["text"] = "   "
    page = form.submit(status=400)
    assert "Write something first." in page.text
    assert stored_texts(dbsession) == []


def test_a_too_long_note_is_refused(testapp, dbsession):
    """A note longer than the column is refused, and the text kept in the form."""
    form = testapp.get("/").forms["new-note"]
    form["text"] = "x" * 501
    page = form.submit(status=400)
    assert "at most 500 characters" in page.text
    assert page.forms["new-note"]["text"].value == "x" * 501
    assert stored_texts(dbsession) == []


def test_a_post_without_the_csrf_token_is_refused(testapp, dbsession):
    """A form posted from elsewhere (no CSRF token) changes nothing."""
    testapp.post("/notes", {"text": "from another site"}, status=400)
    assert stored_texts(dbsession) == []


def test_a_note_page_comes_from_the_route_factory(testapp, dbsession):
    """/notes/ID finds the note in the route factory; the plain view shows it."""
    (note,) = add_notes(dbsession, "look me up")
    page = testapp.get(f"/notes/{note.id}")
    assert '<blockquote id="note">look me up</blockquote>' in page.text


def test_a_missing_note_is_a_404_page(testapp):
    """The route factory's 404 is rendered by the not-found view."""
    page = testapp.get("/notes/999999", status=404)
    assert "There is no note 999999." in page.text


def test_the_api_is_a_coroutine_view_on_the_same_session(testapp, dbsession):
    """/api/notes awaits, then lists the notes; ?after=ID the newer ones."""
    first, _ = add_notes(dbsession, "one", "two")
    listed = testapp.get("/api/notes").json["notes"]
    assert [note["text"] for note in listed] == ["one", "two"]
    newer = testapp.get(f"/api/notes?after={first.id}").json["notes"]
    assert [note["text"] for note in newer] == ["two"]
    testapp.get("/api/notes?after=x", status=400)


def test_static_files_are_served(testapp):
    """The stylesheet and the icon the layout names exist."""
    page = testapp.get("/")
    for link in page.html.select("link[href]"):
        testapp.get(link["href"])
