"""TLS connections end promptly after an error or a GOAWAY (issue 22, point 5).

A client that goes on sending, and never reads, after the worker has
answered ``431`` (HTTP/1 over TLS) or sent ``GOAWAY`` (HTTP/2) used to be
kept for uvloop's TLS shutdown timeout (30 s), its bytes decrypted and
dropped all along.  On both loops, the worker now aborts such a connection
a couple of seconds after closing it.
"""

from __future__ import annotations

import select
import socket
import ssl
import time

import pytest

from tests.harness.servers import UNIT, import_required, require_module
from tests.harness.slow_clients import UnreadH2, greedy_worker

pytestmark = pytest.mark.server
import_required("h2")

LOOPS = [
    pytest.param({}, id="uvloop"),
    pytest.param({"AIOPYRAMID_UVLOOP": "0"}, id="asyncio"),
]


def seconds_until_cut(sock: ssl.SSLSocket, limit: float = 15) -> float:
    """Send junk, never reading, until the server ends the connection; how long."""
    started = time.monotonic()
    junk = b"x" * 16384
    sock.setblocking(False)
    while time.monotonic() - started < limit * UNIT:
        _, writable, _ = select.select([], [sock], [], 0.1)
        if not writable:
            continue
        try:
            sock.send(junk)
        except (ssl.SSLWantWriteError, BlockingIOError):
            continue
        except (OSError, ssl.SSLError):
            return time.monotonic() - started
    return time.monotonic() - started


def tls_socket(worker, protocols: list[str]) -> ssl.SSLSocket:
    """A TLS connection to the worker agreeing on one of ``protocols``."""
    context = ssl.create_default_context(cafile=worker.trust.cert_path)
    context.set_alpn_protocols(protocols)
    raw = socket.create_connection(("127.0.0.1", worker.port), 10 * UNIT)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_flooding_after_a_431_over_tls_is_cut_within_seconds(tmp_path, loop):
    """After 431 over TLS, a client that keeps sending is disconnected in seconds."""
    if not loop:
        require_module("uvloop")
    with greedy_worker(tmp_path, tls=True, env=loop) as worker:
        sock = tls_socket(worker, ["http/1.1"])
        sock.sendall(
            b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
            + b"v" * 20000
            + b"\r\n\r\n"
        )
        answer = sock.recv(4096)  # the refusal (read, as a browser would)
        took = seconds_until_cut(sock)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert took < 5 * UNIT, f"cut after {took:.1f} s"


@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_flooding_after_a_goaway_is_cut_within_seconds(tmp_path, loop):
    """After GOAWAY on HTTP/2, a client that keeps sending is cut off in seconds."""
    if not loop:
        require_module("uvloop")
    with greedy_worker(tmp_path, tls=True, env=loop) as worker:
        client = UnreadH2(worker, small_buffer=False)
        # A HEADERS frame on an even stream id is a connection error
        # (RFC 9113 section 5.1.1): the server answers GOAWAY and closes.
        client.sock.sendall(
            b"\x00\x00\x00\x01\x05\x00\x00\x00\x02"  # HEADERS, stream 2, empty
        )
        events = client.read_events(0.5)  # the GOAWAY
        took = seconds_until_cut(client.sock)
        client.close()
    h2_events = import_required("h2.events")
    assert any(isinstance(e, h2_events.ConnectionTerminated) for e in events)
    assert took < 5 * UNIT, f"cut after {took:.1f} s"
