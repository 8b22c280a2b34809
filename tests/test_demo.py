"""The README's example application, served for real by the gunicorn worker."""

from __future__ import annotations

import json
import urllib.request

from .servers import free_port, python_module, require_module, running


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_demo_serves_coroutine_and_plain_views():
    """python -m aiopyramid.demo answers from a coroutine and a plain view."""
    require_module("gunicorn")
    port = free_port()
    command = python_module("aiopyramid.demo", "--bind", f"127.0.0.1:{port}")
    with running(command, port) as server:
        assert "Answered by a coroutine view." in fetch(f"{server.url}/")
        plain = fetch(f"{server.url}/plain")
        assert "Answered by a plain view on" in plain
        assert "MainThread" not in plain
        assert json.loads(fetch(f"{server.url}/json")) == {
            "view": "coroutine",
            "path": "/json",
        }
