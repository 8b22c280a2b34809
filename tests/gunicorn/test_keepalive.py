"""Kept-alive connections under the worker: a request that came is answered."""

from __future__ import annotations

import socket
import time

import pytest

from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    require_module,
    running,
    wait_until,
)

pytestmark = pytest.mark.server
#: gunicorn's keepalive for these tests, in seconds.
KEEPALIVE = 1
GET = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"


def _answer(sock: socket.socket) -> bytes:
    """Read one small answer (or b"" if the server closed instead)."""
    data = b""
    while b"hello" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_request_arriving_as_the_keepalive_deadline_fires_is_answered(tmp_path):
    """A request head read in the turn of the loop where the idle deadline fires
    is served, not dropped with the connection (seen as a RemoteProtocolError)."""
    require_module("gunicorn")
    marker = tmp_path / "holding"
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--keep-alive",
        str(KEEPALIVE),
        "tests.apps.held:main()",
    )
    with running(command, port, env={"AIOPYRAMID_TEST_HOLD": str(marker)}):
        kept = socket.create_connection(("127.0.0.1", port), 10 * UNIT)
        kept.sendall(GET)
        assert b" 200 " in _answer(kept)
        idle_since = time.monotonic()  # the server armed its deadline by now
        holder = socket.create_connection(("127.0.0.1", port), 10 * UNIT)
        holder.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(marker.exists, 10)  # the loop is held from now on
        # Past the idle deadline while the loop is held: when it is free,
        # the request and the deadline are due in the same turn.
        time.sleep(max(0.0, idle_since + KEEPALIVE + 0.2 - time.monotonic()))
        kept.sendall(GET)  # on loopback, in the server's buffer on return
        marker.unlink()
        assert b" 200 " in _answer(kept)
        assert b" 200 " in holder.recv(65536)
        kept.close()
        holder.close()
