"""Drive an ASGI application in-process: a scripted websocket conversation."""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def literal_blocks(path: Path) -> list[str]:
    """The Python literal blocks (``::`` or ``code-block:: python``) of a page."""
    text = path.read_text()
    blocks = re.findall(r"(?<!testcode)::(?: python)?\n\n((?:    .*\n|\n)+)", text)
    return [textwrap.dedent(b) for b in blocks]


def websocket_conversation(
    app: Any, path: str, messages: list[str | bytes], subprotocols: list[str] = ()
) -> list[dict[str, Any]]:
    """Connect to ``path``, send ``messages``, disconnect; return what was sent."""
    incoming: list[dict[str, Any]] = [{"type": "websocket.connect"}]
    for message in messages:
        key = "text" if isinstance(message, str) else "bytes"
        incoming.append({"type": "websocket.receive", key: message})
    incoming.append({"type": "websocket.disconnect", "code": 1000})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        # Let the view answer each message before the next one arrives.
        for _ in range(5):
            await asyncio.sleep(0)
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(websocket_scope(path, subprotocols), receive, send))
    return sent


def http_scope(
    path: str, headers: Sequence[tuple[bytes, bytes]] = ((b"host", b"x"),)
) -> dict[str, Any]:
    """The ASGI scope of a GET of ``path`` (no query) on loopback."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


def websocket_scope(path: str, subprotocols: Sequence[str] = ()) -> dict[str, Any]:
    """The ASGI scope of a websocket handshake for ``path`` on loopback."""
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"x"),
            (b"connection", b"upgrade"),
            (b"upgrade", b"websocket"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "subprotocols": list(subprotocols),
    }


def texts(sent: list[dict[str, Any]]) -> list[str | bytes]:
    """The messages an application sent, in order."""
    return [
        m.get("text") if m.get("text") is not None else m.get("bytes")
        for m in sent
        if m["type"] == "websocket.send"
    ]
