"""Raw websocket frames against a real uWSGI: what only uWSGI's setup asks.

One uWSGI process (Debian's packages, a master and one worker with 50 async
cores, so every connection below shares one worker) serves
``tests/apps/uwsgi.py``'s unwrapped application, with a 17 MiB message
limit.  The frames every server must handle alike (fragments, protocol
errors, UTF-8, limits, pings, closes) are one suite run against uWSGI, the
gunicorn worker and uvicorn: ``tests/websocket/test_conformance.py``.  Here:
connections sharing one worker, large messages, the views of
``tests/apps/uwsgi.py`` that wait, flood or never read, and the worker's log.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import termios
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.servers import UNIT, import_required, wait_until
from tests.harness.uwsgi import UWSGIServer, uwsgi_for_tests

import_required("websockets")

from tests.harness.raw_websocket import (  # noqa: E402
    BINARY,
    CLOSE,
    CONT,
    TEXT,
    RawClient,
    raw_frame,
    still_echoes,
)

pytestmark = pytest.mark.server

MiB = 1024 * 1024
EXTRA_INI = """\
master = true
websockets-max-size = 17408
websockets-ping-freq = 1
websockets-pong-tolerance = 1
"""


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[UWSGIServer]:
    """The uWSGI server for this module; its log is shown if a test failed."""
    with uwsgi_for_tests(
        request,
        "tests.apps.uwsgi:bare_application",
        "uwsgi-frames.log",
        extra_ini=EXTRA_INI,
    ) as uwsgi:
        yield uwsgi


@pytest.fixture
def client(server: UWSGIServer) -> Iterator[RawClient]:
    """A raw client connected to the echo view."""
    raw = RawClient(server)
    yield raw
    raw.close()


def test_interleaved_fragments_of_two_connections(server: UWSGIServer) -> None:
    """Two connections on one worker, fragmenting at once, get their own data."""
    first, second = RawClient(server), RawClient(server)
    try:
        for raw, data in [(first, b"aaa"), (second, b"BBB")]:
            raw.send(raw_frame(TEXT, data, fin=False))
            # The input's pace: two clients writing in turn, so that the
            # worker most likely reads each fragment before the other's.
            time.sleep(0.05)
        for raw, data in [(first, b"AAA"), (second, b"bbb")]:
            raw.send(raw_frame(CONT, data))
            time.sleep(0.05)  # the same pace
        assert first.message() == (TEXT, b"aaaAAA")
        assert second.message() == (TEXT, b"BBBbbb")
    finally:
        first.close()
        second.close()


def test_16_mib_message_within_the_limit(client: RawClient) -> None:
    """A 16 MiB binary message is echoed whole under a 17 MiB limit."""
    big = os.urandom(16 * MiB)
    client.send(
        raw_frame(BINARY, big[: 8 * MiB], fin=False), raw_frame(CONT, big[8 * MiB :])
    )
    assert client.message(timeout=30 * UNIT) == (BINARY, big)


def test_view_sees_the_close_code(server: UWSGIServer) -> None:
    """ws.close_code is the client's code, or 1006 for a client that vanished."""
    polite, rude = RawClient(server, "/ws/close-code/polite"), None
    try:
        assert polite.message() == (TEXT, b"open None")
        polite.send(raw_frame(CLOSE, struct.pack("!H", 4002)))
        assert polite.closed_with() == 4002
        rude = RawClient(server, "/ws/close-code/rude")
        assert rude.message() == (TEXT, b"open None")
        rude.send(raw_frame(TEXT, b"hi"))
        assert rude.message() == (TEXT, b"hi")
    finally:
        polite.close()
        if rude is not None:
            rude.close()
    wait_until(lambda: {"polite 4002", "rude 1006"} <= set(get_json(server, "/closed")))
    assert {"polite 4002", "rude 1006"} <= set(get_json(server, "/closed"))


def test_recv_may_be_cancelled(server: UWSGIServer) -> None:
    """A view may time out waiting in recv() and receive later all the same."""
    client = RawClient(server, "/ws/impatient")
    try:
        assert client.message() == (TEXT, b"nothing yet")
        client.send(raw_frame(TEXT, b"late"))
        assert client.message() == (TEXT, b"late")
    finally:
        client.close()


def test_many_messages_for_a_busy_view(server: UWSGIServer) -> None:
    """Messages a busy view has not read yet wait (reading pauses), in order."""
    client = RawClient(server, "/ws/slow-echo")
    try:
        client.send(*(raw_frame(TEXT, b"%d" % n) for n in range(100)))
        assert [client.message()[1] for _ in range(100)] == [
            b"%d" % n for n in range(100)
        ]
    finally:
        client.close()


def test_view_that_never_reads_still_closes_promptly(server: UWSGIServer) -> None:
    """Unread messages do not keep the closing handshake waiting."""
    client = RawClient(server, "/ws/deaf")
    try:
        client.send(*(raw_frame(TEXT, b"%d" % n) for n in range(100)))
        started = time.monotonic()
        assert client.closed_with() == 1000
        assert time.monotonic() - started < 2 * UNIT  # the view returns at 0.5 s
    finally:
        client.close()


def test_sending_to_a_client_that_stops_reading(server: UWSGIServer) -> None:
    """send() waits while the client reads nothing, and ends when it resets."""
    client = RawClient(server, "/ws/flood")
    try:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        # The server fills the socket (and then waits in send()).
        wait_until(lambda: unread_bytes(client.sock) >= 65536)
        for _ in range(20):
            assert client.message() == (BINARY, b"x" * 65536)
        client.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
    finally:
        client.close()  # with linger 0: a reset, unread data dropped
    # The flooding view stops.
    wait_until(lambda: "flood closed=True" in get_json(server, "/closed"))
    assert still_echoes(server)


def test_closes_stay_out_of_the_log(server: UWSGIServer) -> None:
    """Without ignore_websocket_closed, ended connections log no traceback."""
    log = server.log()
    assert "GET /ws/echo" in log
    assert "WebsocketClosed" not in log
    assert "Traceback" not in log


def unread_bytes(sock: socket.socket) -> int:
    """How many received bytes wait in ``sock`` for the client to read them."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]


def get_json(server: UWSGIServer, path: str) -> Any:
    """GET ``path``: its decoded JSON body."""
    with urllib.request.urlopen(server.url + path, timeout=10 * UNIT) as response:
        return json.loads(response.read())


def test_the_worker_never_died(server: UWSGIServer) -> None:
    """After everything above, the first worker is still the one serving."""
    log = server.log()
    assert "Segmentation Fault" not in log
    assert "died" not in log
    assert still_echoes(server)
