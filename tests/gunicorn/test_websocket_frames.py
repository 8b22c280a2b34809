"""Raw websocket handshakes only the worker refuses itself, before the application.

The frames every server must handle alike (fragments, protocol errors,
UTF-8, limits, pings, closes) are one suite run against the worker, uWSGI
and uvicorn: ``tests/websocket/test_conformance.py``.  Here: what
``AsyncGunicornWorker`` checks in a handshake before the bridge sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.raw_http import answer_to
from tests.harness.servers import free_port, gunicorn_command, import_required, running

pytestmark = pytest.mark.server
import_required("websockets")
import_required("gunicorn")
import_required("h11")


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """The worker, one process, for this module."""
    port = free_port()
    command = gunicorn_command(
        "--bind", f"127.0.0.1:{port}", "tests.apps.websockets:app"
    )
    with running(command, port) as proc:
        yield proc


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"Sec-WebSocket-Version: 12", 426),
        (b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=", 400),
        (b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!!", 400),
    ],
    ids=["version-12", "short-key", "key-not-base64"],
)
def test_bad_handshakes_are_refused_before_the_application(
    server: Any, header: bytes, status: int
) -> None:
    """Version other than 13: 426 (naming 13); a key not base64 of 16 bytes: 400."""
    answer = answer_to(
        server.port,
        b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n" + header + b"\r\n\r\n",
    )
    assert answer.status == status, answer
    if status == 426:
        assert answer.headers["sec-websocket-version"] == "13"
