"""The worker's own refusals on its direct HTTP/1 path: answered, and logged.

One worker with ``--worker-connections 1`` serves ``tests/apps/framing.py``:
while one slow request holds the only slot, the next is refused.  Answers
are read with ``h11`` (``tests/harness/raw_http.py``).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.raw_http import answer_to
from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    running,
    wait_until,
)

import_required("h11")
import_required("gunicorn")

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The framing app on one worker with a single request slot."""
    folder = tmp_path_factory.mktemp("refusals")
    notes, log = folder / "notes.txt", folder / "access.log"
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-connections",
        "1",
        "--access-logfile",
        str(log),
        "--access-logformat",
        'ACCESS "%(r)s" %(s)s',
        "tests.apps.framing:app",
    )
    with running(command, port, env={"AIOPYRAMID_TEST_NOTES": str(notes)}) as proc:
        proc.notes = notes
        proc.access_log = log
        yield proc


def read(path: Path) -> str:
    """What ``path`` holds so far ("" before it exists)."""
    return path.read_text() if path.exists() else ""


def test_a_request_past_worker_connections_gets_503_logged_without_a_crash(
    server: Any,
) -> None:
    """The refused request gets 503 with Retry-After, an access line, no traceback."""
    before = read(server.notes).count("slow started")
    with socket.create_connection(("127.0.0.1", server.port), 10 * UNIT) as slow:
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: read(server.notes).count("slow started") > before)
        refused = answer_to(
            server.port, b"GET /hello?second HTTP/1.1\r\nHost: x\r\n\r\n"
        )
    assert refused.status == 503, refused
    assert refused.headers["retry-after"] == "1"
    assert refused.body == b"Service Unavailable: too many requests."
    wait_until(lambda: '"GET /hello?second HTTP/1.1" 503' in read(server.access_log))
    # The slot is free again once the slow request's client has left.
    wait_until(
        lambda: (
            answer_to(server.port, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status
            == 200
        )
    )
    log = server.log()
    assert "Traceback" not in log, log
    assert not re.search(r"AttributeError", log), log
