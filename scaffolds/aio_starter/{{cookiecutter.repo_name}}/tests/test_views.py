"""Tests of {{ cookiecutter.project_name }}, through the whole application."""

import pytest
from webtest import TestApp

from aiopyramid.testing import SynchronousApp
from {{ cookiecutter.package_name }} import main


@pytest.fixture
def client():
    with SynchronousApp(main({})) as app:
        yield TestApp(app)


def test_home_is_served_by_a_coroutine_view(client):
    """The home page comes from the coroutine view."""
    response = client.get("/")
    assert "Hello from a coroutine view." in response.text


def test_plain_view_runs_on_a_thread(client):
    """The plain view answers from a pool thread, not the loop's."""
    response = client.get("/plain")
    assert response.json["view"] == "plain"
    assert response.json["thread"] != "MainThread"
