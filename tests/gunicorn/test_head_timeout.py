"""The worker's head deadline (``aiopyramid.request_head_timeout``), raw sockets.

gunicorn 27 sets no deadline on a connection's first request head, so one
client trickling a head byte by byte would hold its connection forever
(slowloris); ``AsyncGunicornWorker`` closes it after the deadline while
everybody else is served.
"""

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
)

pytestmark = pytest.mark.server

APP = "tests.apps.websockets:with_settings('aiopyramid.request_head_timeout=1')"


def ask(port: int) -> bytes:
    """One whole request on a new connection: the status line of its answer."""
    with socket.create_connection(("127.0.0.1", port), UNIT) as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_a_trickled_head_is_cut_while_others_are_served() -> None:
    """A head sent a byte every 0.1 s is closed after 1 s; prompt clients are served."""
    require_module("gunicorn")
    port = free_port()
    with running(gunicorn_command("--bind", f"127.0.0.1:{port}", APP), port) as proc:
        slow = socket.create_connection(("127.0.0.1", port), UNIT)
        slow.settimeout(0.1)
        started = time.monotonic()
        head = b"GET /status HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"z" * 1000
        served, closed_after = [], None
        for byte in head:
            try:
                slow.sendall(bytes([byte]))
                if slow.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass  # nothing from the server yet: trickle on
            except OSError:  # reset while sending
                closed_after = time.monotonic() - started
                break
            if len(served) < 3 and time.monotonic() - started > 0.3 * len(served):
                served.append(ask(port))
            assert time.monotonic() - started < 10 * UNIT
        slow.close()
        assert closed_after is not None and 0.9 < closed_after < 3, closed_after
        assert served == [b"HTTP/1.1 200 OK"] * 3
        assert ask(port) == b"HTTP/1.1 200 OK"
        assert "Request head not received in 1.0s" in proc.log()


def test_kept_alive_connections_are_not_cut() -> None:
    """A connection whose first head came in time outlives the head deadline."""
    require_module("gunicorn")
    port = free_port()
    command = gunicorn_command("--bind", f"127.0.0.1:{port}", "--keep-alive", "5", APP)
    with (
        running(command, port),
        socket.create_connection(("127.0.0.1", port), UNIT) as sock,
    ):
        for _ in range(2):
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"\r\n\r\n0"):  # /status says "0"
                chunk = sock.recv(4096)
                assert chunk, f"closed after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 OK"), answer
            time.sleep(1.5)  # the input: idle longer than the head deadline
