"""What a user is told at start-up and when a coroutine view meets the wrong server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pyramid.config import Configurator
from pyramid.response import Response
from webtest import TestApp

from aiopyramid._startup import check_included, default_pool_size
from aiopyramid.exceptions import ScopeError
from tests.harness.inprocess import make_app


async def hello(request):
    await asyncio.sleep(0)
    return Response("hello")


def routes(config):
    config.add_route("hello", "/")
    config.add_view(hello, route_name="hello")


def test_include_logs_the_default_pool_size(caplog):
    """Without the setting, the log says how many threads and what to set."""
    with caplog.at_level(logging.INFO, "aiopyramid"):
        make_app(routes)
    expected = (
        f"plain views run on the event loop's default executor: "
        f"{default_pool_size()} threads"
    )
    assert any(expected in r.getMessage() for r in caplog.records)
    assert "aiopyramid.executor.max_workers" in caplog.text


def test_include_logs_the_configured_pool_size(caplog):
    """With aiopyramid.executor.max_workers, the log gives that number."""
    with caplog.at_level(logging.INFO, "aiopyramid"):
        make_app(routes, **{"aiopyramid.executor.max_workers": "40"})
    assert "plain views run on 40 threads" in caplog.text


def test_the_log_says_what_runs_on_the_pool_in_each_mode(caplog):
    """In the greenlet and thread modes the log says what the pool is for."""
    with caplog.at_level(logging.INFO, "aiopyramid"):
        make_app(routes, **{"aiopyramid.mode": "greenlet"})
        make_app(routes, **{"aiopyramid.mode": "thread"})
    assert "plain views run in the request's greenlet" in caplog.text
    assert "each request's plain code runs (aiopyramid.mode = thread)" in caplog.text


def test_an_app_without_the_include_is_named_at_start_up(caplog):
    """check_included warns, with the fix, for an app that never included us."""
    with Configurator() as config:
        routes(config)
    plain_app = config.make_wsgi_app()
    with caplog.at_level(logging.WARNING, "aiopyramid"):
        assert not check_included(plain_app)
    assert "never ran config.include('aiopyramid')" in caplog.text
    assert "pyramid.includes" in caplog.text
    caplog.clear()
    assert check_included(make_app(routes))
    assert check_included(lambda environ, start_response: [])  # not Pyramid's
    assert caplog.text == ""


def test_coroutine_view_under_a_plain_wsgi_server_names_the_servers():
    """A plain WSGI call (as waitress makes) fails with the servers that work."""
    app = TestApp(make_app(routes))
    with pytest.raises(ScopeError) as error:
        app.get("/")
    message = str(error.value)
    assert "A plain WSGI server (waitress" in message
    assert "aiopyramid.gunicorn.worker.AsyncGunicornWorker" in message
    assert "make_asgi_app" in message
    assert "uWSGI's asyncio plugin" in message


@pytest.mark.server
def test_worker_refuses_a_bad_websocket_size_with_the_fix(tmp_path):
    """A worker setting that is not a number stops the worker, naming the fix."""
    from tests.harness.servers import (
        ServerProcess,
        free_port,
        gunicorn_command,
        wait_until,
    )

    (tmp_path / "bad_setting_app.py").write_text(
        "from pyramid.config import Configurator\n"
        "with Configurator(settings={'aiopyramid.websocket.max_size': 'lots'}) as c:\n"
        "    c.include('aiopyramid')\n"
        "app = c.make_wsgi_app()\n"
    )
    port = free_port()
    command = gunicorn_command(
        "--chdir", str(tmp_path), "--bind", f"127.0.0.1:{port}", "bad_setting_app:app"
    )
    server = ServerProcess(command, port)
    try:
        wait_until(lambda: server.process.poll() is not None, 30)
        log = server.log()
    finally:
        server.stop()
    assert "aiopyramid.websocket.max_size must be a positive number, not 'lots'" in log
    assert "largest websocket message" in log
