"""The tutorial's application, served as the tutorial says."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from .servers import (
    ROOT,
    console_script,
    free_port,
    require,
    require_module,
    running,
)

TUTORIAL = ROOT / "docs" / "tutorial"


@pytest.fixture
def tutorial(tmp_path: Path) -> Path:
    """A copy of the tutorial's folder."""
    shutil.copytree(
        TUTORIAL,
        tmp_path / "tutorial",
        ignore=shutil.ignore_patterns("*.sqlite", "__pycache__"),
    )
    return tmp_path / "tutorial"


def call(url: str, data: dict | None = None) -> tuple[int, str]:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_tutorial_app_under_gunicorn(tutorial: Path):
    """Notes are stored, listed, exported and pushed to an open feed."""
    require_module("aiosqlite")
    require_module("websockets")
    from websockets.asyncio.client import connect

    port = free_port()
    ini = tutorial / "development.ini"
    ini.write_text(ini.read_text().replace("port = 6543", f"port = {port}"))
    # As the tutorial says: PYTHONPATH=. pserve development.ini
    command = [console_script("pserve"), "development.ini"]
    env = {"PYTHONPATH": f"{tutorial}:{ROOT}"}

    async def scenario(server) -> tuple[str, tuple[int, str]]:
        async with connect(server.ws_url + "/feed") as feed:
            await asyncio.sleep(0.2)  # the feed is registered in on_open
            added = await asyncio.to_thread(
                call, server.url + "/notes", {"text": "buy milk"}
            )
            return await asyncio.wait_for(feed.recv(), 5), added

    with running(command, port, cwd=tutorial, env=env) as server:
        pushed, added = asyncio.run(scenario(server))
        assert pushed == "buy milk"
        assert added == (201, '{"id": 1, "text": "buy milk"}')
        assert call(server.url + "/notes") == (
            200,
            '{"notes": [{"id": 1, "text": "buy milk"}]}',
        )
        status, csv_text = call(server.url + "/notes.csv")
        assert status == 200
        assert csv_text.splitlines() == ["id,text", "1,buy milk"]


def test_tutorial_app_under_uwsgi(tutorial: Path):
    """The tutorial's uwsgi.ini serves the same app: store, list, push."""
    require_module("websockets")
    from websockets.asyncio.client import connect

    from .uwsgi_apps.server import UWSGI, missing_uwsgi, uwsgi_venv

    reason = missing_uwsgi()
    require(reason is None, reason or "")
    port = free_port()
    ini = tutorial / "uwsgi.ini"
    text = ini.read_text()
    assert "127.0.0.1:6543" in text and "%d.venv-uwsgi" in text
    ini.write_text(
        text.replace("127.0.0.1:6543", f"127.0.0.1:{port}").replace(
            "%d.venv-uwsgi", str(uwsgi_venv())
        )
    )

    async def scenario(server) -> tuple[str, tuple[int, str]]:
        async with connect(server.ws_url + "/feed") as feed:
            await asyncio.sleep(0.2)
            added = await asyncio.to_thread(
                call, server.url + "/notes", {"text": "tea"}
            )
            return await asyncio.wait_for(feed.recv(), 5), added

    with running([str(UWSGI), "--ini", "uwsgi.ini"], port, cwd=tutorial) as server:
        pushed, added = asyncio.run(scenario(server))
        assert (pushed, added) == ("tea", (201, '{"id": 1, "text": "tea"}'))
        assert call(server.url + "/notes.csv")[1].splitlines() == ["id,text", "1,tea"]
