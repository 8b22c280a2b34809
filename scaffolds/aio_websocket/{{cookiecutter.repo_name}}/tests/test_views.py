"""Tests of {{ cookiecutter.project_name }}, through the whole application."""

import os

import pytest
from webtest import TestApp

from aiopyramid.testing import SynchronousApp
from {{ cookiecutter.package_name }} import main


@pytest.fixture
def client():
    with SynchronousApp(main({})) as app:
        yield TestApp(app)


def test_page_loads_the_room_script(client):
    """The page renders through Jinja2, names its worker and loads the room."""
    response = client.get("/")
    assert "<h1>{{ cookiecutter.project_name }}</h1>" in response.text
    assert f"coroutine view on worker {os.getpid()}" in response.text
    script = client.get("/static/room.js")
    assert "new WebSocket" in script.text


def test_the_icon_is_served(client):
    """The page's icon exists, so browsers get no 404."""
    assert client.get("/static/favicon.svg").content_type == "image/svg+xml"


def test_plain_get_to_the_websocket_is_refused(client):
    """A GET without websocket upgrade headers to /room is a 400."""
    client.get("/room", status=400)


def test_stats_come_from_a_plain_view(client):
    """The plain stats view answers with this worker's open websockets."""
    assert client.get("/stats").json == {"worker": os.getpid(), "open_connections": 0}
