"""The tutorial's application, served as the tutorial says."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from .servers import ROOT, console_script, free_port, require_module, running

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
