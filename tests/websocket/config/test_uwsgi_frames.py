"""Raw websocket frames, hostile ones included, against a real uWSGI.

One uWSGI process (Debian's packages, a master and one worker with 50 async
cores, so every connection below shares one worker) serves
``tests/apps/uwsgi.py``'s unwrapped application, with a 17 MiB message
limit and a keepalive ping every second.  The client here is a plain socket:
frames are built by hand (hostile ones could not be built otherwise) and the
server's frames are read with the ``websockets`` client protocol.  Each test
of a malformed frame checks the close code and that the worker still serves.
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

from websockets.frames import Close  # noqa: E402

from tests.harness.raw_websocket import (  # noqa: E402
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    RawClient,
    raw_frame,
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


def still_echoes(server: UWSGIServer) -> bool:
    """A new connection echoes: the worker survived what came before."""
    raw = RawClient(server)
    try:
        raw.send(raw_frame(TEXT, b"still here"))
        return raw.message() == (TEXT, b"still here")
    finally:
        raw.close()


def test_empty_message_then_hello_in_one_write(client: RawClient) -> None:
    """An empty text frame followed by "hello" in one write: both echoed at once."""
    client.send(raw_frame(TEXT, b""), raw_frame(TEXT, b"hello"))
    assert client.message() == (TEXT, b"")
    assert client.message() == (TEXT, b"hello")


def test_empty_binary_message(client: RawClient) -> None:
    """An empty binary message comes back as an empty binary message."""
    client.send(raw_frame(BINARY, b""))
    assert client.message() == (BINARY, b"")


def test_fragmented_message_with_a_ping_inside(client: RawClient) -> None:
    """Fragments make one message; a ping between them is answered first."""
    client.send(
        raw_frame(TEXT, b"hel", fin=False),
        raw_frame(CONT, b"", fin=False),
        raw_frame(PING, b"inside"),
        raw_frame(CONT, "lo wörld".encode(), fin=True),
    )
    pong = client.frame()
    assert pong is not None
    assert (pong.opcode, bytes(pong.data)) == (PONG, b"inside")
    assert client.message() == (TEXT, "hello wörld".encode())


def test_fragments_one_byte_per_write(client: RawClient) -> None:
    """A fragmented binary message trickling in byte by byte arrives whole."""
    data = raw_frame(BINARY, b"\x00\xff", fin=False) + raw_frame(CONT, b"\x01")
    for byte in data:
        client.send(bytes([byte]))
    assert client.message() == (BINARY, b"\x00\xff\x01")


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


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([raw_frame(CONT, b"nothing to continue")], id="continuation"),
        pytest.param([raw_frame(PING, b"half", fin=False)], id="fragmented-ping"),
        pytest.param(
            [raw_frame(TEXT, b"a", fin=False), raw_frame(TEXT, b"b")],
            id="new-message-inside-fragments",
        ),
        pytest.param([raw_frame(TEXT, b"x", rsv=4)], id="rsv1"),
        pytest.param([raw_frame(TEXT, b"x", rsv=2)], id="rsv2"),
        pytest.param([raw_frame(BINARY, b"x", rsv=1)], id="rsv3"),
        pytest.param([raw_frame(3, b"x")], id="reserved-data-opcode"),
        pytest.param([raw_frame(0xB, b"x")], id="reserved-control-opcode"),
        pytest.param([raw_frame(PING, b"x" * 126)], id="long-ping"),
        pytest.param([raw_frame(CLOSE, struct.pack("!H", 999))], id="close-code-999"),
        pytest.param([raw_frame(CLOSE, b"\x03")], id="close-payload-of-one-byte"),
    ],
)
def test_protocol_errors_close_with_1002(
    server: UWSGIServer, client: RawClient, frames: list[bytes]
) -> None:
    """Malformed frames close the connection with 1002; the worker lives on."""
    client.send(*frames)
    assert client.closed_with() == 1002
    assert still_echoes(server)


def test_invalid_utf8_closes_with_1007(server: UWSGIServer, client: RawClient) -> None:
    """A text message that is not UTF-8 closes with 1007."""
    client.send(raw_frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed"))
    assert client.closed_with() == 1007
    assert still_echoes(server)


def test_invalid_utf8_fails_before_the_message_ends(client: RawClient) -> None:
    """Invalid UTF-8 in a first fragment closes at once, not at the end."""
    client.send(raw_frame(TEXT, b"ok \xff then", fin=False))
    assert client.closed_with() == 1007


def test_utf8_split_between_fragments(client: RawClient) -> None:
    """A character split across two fragments is still one valid message."""
    encoded = "κόσμε".encode()
    client.send(raw_frame(TEXT, encoded[:3], fin=False), raw_frame(CONT, encoded[3:]))
    assert client.message() == (TEXT, encoded)


def test_ping_payload_comes_back_in_the_pong(client: RawClient) -> None:
    """A ping's payload is echoed in the pong."""
    client.send(raw_frame(PING, b"\x00payload\xff"))
    pong = client.frame()
    assert pong is not None
    assert (pong.opcode, bytes(pong.data)) == (PONG, b"\x00payload\xff")


def test_close_between_fragments_ends_normally(client: RawClient) -> None:
    """A close frame inside a fragmented message is a normal close (Autobahn 7.1.5)."""
    client.send(
        raw_frame(TEXT, b"frag", fin=False),
        raw_frame(CLOSE, struct.pack("!H", 1000)),
        raw_frame(CONT, b"ment"),
    )
    assert client.closed_with() == 1000


def test_client_close_code_is_echoed(client: RawClient) -> None:
    """The server answers a close frame with the client's own code and reason."""
    client.send(raw_frame(CLOSE, struct.pack("!H", 4001) + b"bye"))
    frame = client.frame()
    assert frame is not None
    assert frame.opcode is CLOSE
    assert (Close.parse(frame.data).code, Close.parse(frame.data).reason) == (
        4001,
        "bye",
    )
    assert client.frame() is None  # and the server ends TCP


def test_16_mib_message_within_the_limit(client: RawClient) -> None:
    """A 16 MiB binary message is echoed whole under a 17 MiB limit."""
    big = os.urandom(16 * MiB)
    client.send(
        raw_frame(BINARY, big[: 8 * MiB], fin=False), raw_frame(CONT, big[8 * MiB :])
    )
    assert client.message(timeout=30 * UNIT) == (BINARY, big)


def test_message_over_the_limit_closes_with_1009(client: RawClient) -> None:
    """Fragments adding up to more than the 17 MiB limit close with 1009."""
    chunk = b"x" * (6 * MiB)
    client.send(
        *(raw_frame(BINARY if n == 0 else CONT, chunk, fin=False) for n in range(3))
    )
    assert client.closed_with(timeout=30 * UNIT) == 1009


def test_keepalive_pings_and_the_silent_client(client: RawClient) -> None:
    """Answered pings keep a connection open; unanswered, it closes with 1011."""
    client.listen(2.5)  # two pings (one a second), answered as they come
    client.send(raw_frame(TEXT, b"alive"))
    assert client.message() == (TEXT, b"alive")
    client.answer_pings = False
    assert client.closed_with(timeout=15 * UNIT) == 1011


def test_unsolicited_pong_is_ignored(client: RawClient) -> None:
    """A pong nobody asked for changes nothing."""
    client.send(raw_frame(PONG, b"unasked"), raw_frame(TEXT, b"after"))
    assert client.message() == (TEXT, b"after")


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
