"""What a user reads when something goes wrong: failures and websockets in logs.

In-process through the ASGI bridge (httpx's ASGI transport drives it on a real
loop), and through a real gunicorn worker for its access log.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback

import pytest
from pyramid.config import Configurator

from aiopyramid.asgi import make_asgi_app
from aiopyramid.websocket.config import WebsocketMapper
from tests.harness.asgi_client import websocket_conversation
from tests.harness.inprocess import make_app
from tests.harness.servers import (
    free_port,
    gunicorn_command,
    import_required,
    running,
    wait_until,
)

httpx = import_required("httpx")


async def failing(request):
    await asyncio.sleep(0)
    raise ValueError("the view broke")


def plain_failing(request):
    raise KeyError("plain too")


def broken_tween_factory(handler, registry):
    def broken_tween(request):
        raise RuntimeError("the tween broke")

    return broken_tween


async def echo(ws):
    while (message := await ws.recv()) is not None:
        await ws.send(message)


def routes(config):
    config.add_route("failing", "/failing")
    config.add_view(failing, route_name="failing")
    config.add_route("plain", "/plain")
    config.add_view(plain_failing, route_name="plain")
    config.add_route("echo", "/echo")
    config.add_view(echo, route_name="echo", mapper=WebsocketMapper)


def get(app, path: str) -> httpx.Response:
    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            return await c.get(path)

    return asyncio.run(call())


def failure_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aiopyramid.failures" and r.exc_info]


@pytest.mark.parametrize(
    ("path", "view", "error"),
    [
        ("/failing", "coroutine view failing", "ValueError: the view broke"),
        ("/plain", "view plain_failing", "KeyError: 'plain too'"),
    ],
)
def test_a_failing_view_is_logged_with_request_line_and_name(caplog, path, view, error):
    """One ERROR line names the request and the view; the client gets a 500."""
    app = make_asgi_app(make_app(routes))
    with caplog.at_level(logging.ERROR, "aiopyramid"):
        response = get(app, path)
    assert response.status_code == 500
    (record,) = failure_records(caplog)
    assert record.getMessage() == f'"GET {path} HTTP/1.1" failed in {view}: {error}'
    # The traceback starts in the application, not in the bridge.
    frames = traceback.extract_tb(record.exc_info[2])
    assert not any(
        re.search(r"aiopyramid/(asgi|_asgi_\w+|_bridge)\.py$", f.filename)
        for f in frames[:1]
    ), frames
    assert any(f.name in ("failing", "plain_failing") for f in frames), frames


def test_a_failure_outside_views_says_so(caplog):
    """A tween that raises is reported as outside any view."""

    def setup(config):
        routes(config)
        config.add_tween(f"{__name__}.broken_tween_factory")

    app = make_asgi_app(make_app(setup))
    with caplog.at_level(logging.ERROR, "aiopyramid"):
        assert get(app, "/failing").status_code == 500
    (record,) = failure_records(caplog)
    assert "failed in the application, outside any view: RuntimeError" in (
        record.getMessage()
    )


def test_serving_an_app_without_the_include_warns_at_start(caplog):
    """make_asgi_app (so every server and the worker) names the missing include."""
    with Configurator() as config:
        routes(config)
    with caplog.at_level(logging.WARNING, "aiopyramid"):
        make_asgi_app(config.make_wsgi_app())
    assert "never ran config.include('aiopyramid')" in caplog.text


def test_websockets_get_two_access_lines():
    """Accepted: 101; ended: the close code and the connection's duration."""
    lines = []
    app = make_asgi_app(
        make_app(routes), access_logger=lambda *line: lines.append(line)
    )
    sent = websocket_conversation(app, "/echo", ["hi"])
    assert sent[0]["type"] == "websocket.accept"
    assert [(line[0]["PATH_INFO"], line[1]) for line in lines] == [
        ("/echo", "101"),
        ("/echo", "1000"),
    ]
    assert lines[1][4] >= lines[0][4] >= 0


@pytest.mark.server
def test_worker_access_log_has_websocket_lines():
    """Under the worker, gunicorn's access log shows a websocket's 101 and close."""
    websockets = import_required("websockets.asyncio.client")
    port = free_port()
    command = gunicorn_command(
        "--bind", f"127.0.0.1:{port}", "--access-logfile", "-",
        "--access-logformat", '%(h)s "%(r)s" %(s)s %(L)s',
        "tests.harness.faults_app:main()",
    )  # fmt: skip

    async def talk() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"

    with running(command, port) as server:
        asyncio.run(talk())
        wait_until(lambda: '"GET /ws/echo HTTP/1.1" 1000 ' in server.log())
        log = server.log()
    assert re.search(r'127\.0\.0\.1 "GET /ws/echo HTTP/1\.1" 101 \d+\.\d{6}', log)
    assert re.search(r'127\.0\.0\.1 "GET /ws/echo HTTP/1\.1" 1000 \d+\.\d{6}', log)
