"""Tests of {{ cookiecutter.project_name }}, through the whole application."""

import pytest
from webtest import TestApp

from aiopyramid.testing import SynchronousApp
from {{ cookiecutter.package_name }} import main


@pytest.fixture
def client():
    with SynchronousApp(main({})) as app:
        yield TestApp(app)


def test_page_loads_the_echo_script(client):
    """The page renders through Jinja2 and loads the websocket client."""
    response = client.get("/")
    assert "<h1>{{ cookiecutter.project_name }}</h1>" in response.text
    script = client.get("/static/echo.js")
    assert "new WebSocket" in script.text


def test_plain_get_to_the_websocket_is_refused(client):
    """A GET without websocket upgrade headers to /echo is a 400."""
    client.get("/echo", status=400)


def test_stats_come_from_a_plain_view(client):
    """The plain stats view answers with the count of open websockets."""
    assert client.get("/stats").json == {"open_connections": 0}
