"""Raw websocket frames, hostile ones included, against ``AsyncGunicornWorker``.

One gunicorn worker serves ``tests/apps/websockets.py`` with a 1 MiB message
limit and a keepalive ping every half second.  The client is a plain socket
(``tests/harness/raw_websocket.py``, shared with the uWSGI frame tests):
frames are built by hand and the server's are read with the ``websockets``
client protocol.  Each malformed frame gets its close code, and the worker
still serves afterwards.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    running,
)

pytestmark = pytest.mark.server
import_required("websockets")
import_required("gunicorn")

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

MiB = 1024 * 1024
APP = (
    "tests.apps.websockets:with_settings("
    "'aiopyramid.websocket.max_size=1048576', "
    "'aiopyramid.websocket.ping_interval=0.5', "
    "'aiopyramid.websocket.ping_timeout=0.5', "
    "'aiopyramid.request_head_timeout=0')"
)


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """The worker, one process, for this module."""
    port = free_port()
    with running(gunicorn_command("--bind", f"127.0.0.1:{port}", APP), port) as proc:
        yield proc


@pytest.fixture
def client(server: Any) -> Iterator[RawClient]:
    """A raw client connected to the echo view."""
    raw = RawClient(server)
    yield raw
    raw.close()


@pytest.mark.parametrize(
    ("header", "answer"),
    [
        (b"Sec-WebSocket-Version: 12", b"HTTP/1.1 426 "),
        (b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=", b"HTTP/1.1 400 "),
        (b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!!", b"HTTP/1.1 400 "),
    ],
)
def test_bad_handshakes_are_refused_before_the_application(
    server: Any, header: bytes, answer: bytes
) -> None:
    """Version other than 13: 426 (naming 13); a key not base64 of 16 bytes: 400."""
    with socket.create_connection(("127.0.0.1", server.port), UNIT) as sock:
        sock.sendall(
            b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n" + header + b"\r\n\r\n"
        )
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(answer), reply
    if answer.endswith(b"426 "):
        assert b"Sec-WebSocket-Version: 13\r\n" in reply


def still_echoes(server: Any) -> bool:
    """A new connection echoes: the worker survived what came before."""
    raw = RawClient(server)
    try:
        raw.send(raw_frame(TEXT, b"still here"))
        return raw.message() == (TEXT, b"still here")
    finally:
        raw.close()


def test_fragmented_message_with_a_ping_inside(client: RawClient) -> None:
    """Fragments around a ping make one message; the ping gets its pong first."""
    client.send(
        raw_frame(TEXT, b"frag", fin=False),
        raw_frame(PING, b"in between"),
        raw_frame(CONT, b"mented"),
    )
    pong = client.frame()
    assert pong is not None and (pong.opcode, bytes(pong.data)) == (PONG, b"in between")
    assert client.message() == (TEXT, b"fragmented")


def test_fragments_one_byte_per_write(client: RawClient) -> None:
    """A message arriving a byte at a time is still one message."""
    for byte in raw_frame(BINARY, b"slowly"):
        client.send(bytes([byte]))
    assert client.message() == (BINARY, b"slowly")


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([raw_frame(CONT, b"x")], id="continuation-first"),
        pytest.param(
            [raw_frame(TEXT, b"a", fin=False), raw_frame(TEXT, b"b")],
            id="new-message-inside-another",
        ),
        pytest.param([raw_frame(PING, b"x", fin=False)], id="fragmented-ping"),
        pytest.param([raw_frame(TEXT, b"x", rsv=4)], id="rsv1"),
        pytest.param([raw_frame(3, b"x")], id="reserved-data-opcode"),
        pytest.param([raw_frame(PING, b"x" * 126)], id="long-ping"),
        pytest.param([raw_frame(CLOSE, struct.pack("!H", 999))], id="close-code-999"),
    ],
)
def test_protocol_errors_close_with_1002(
    server: Any, client: RawClient, frames: list[bytes]
) -> None:
    """Malformed frames close the connection with 1002; the worker lives on."""
    client.send(*frames)
    assert client.closed_with() == 1002
    assert still_echoes(server)


def test_invalid_utf8_fails_before_the_message_ends(client: RawClient) -> None:
    """Invalid UTF-8 in a first fragment closes with 1007 at once."""
    client.send(raw_frame(TEXT, b"ok \xff then", fin=False))
    assert client.closed_with() == 1007


def test_utf8_split_between_fragments(client: RawClient) -> None:
    """A character split across two fragments is still one valid message."""
    encoded = "κόσμε".encode()
    client.send(raw_frame(TEXT, encoded[:3], fin=False), raw_frame(CONT, encoded[3:]))
    assert client.message() == (TEXT, encoded)


def test_message_over_the_limit_closes_with_1009(client: RawClient) -> None:
    """Fragments adding up to more than aiopyramid.websocket.max_size: 1009."""
    client.send(raw_frame(BINARY, b"x" * MiB, fin=False), raw_frame(CONT, b"y"))
    assert client.closed_with(timeout=2 * UNIT) == 1009


def test_keepalive_pings_arrive_and_the_silent_client_goes(client: RawClient) -> None:
    """Pings come every ping_interval; unanswered, the connection closes with 1011."""
    pings = 0
    receive = client.protocol.events_received

    def counting() -> list[Any]:
        nonlocal pings
        events = receive()
        pings += sum(event.opcode is PING for event in events)
        return events

    client.protocol.events_received = counting  # type: ignore[method-assign]
    client.listen(1.8)  # three pings, answered as they come
    assert pings >= 3
    client.send(raw_frame(TEXT, b"alive"))
    assert client.message() == (TEXT, b"alive")
    client.answer_pings = False
    assert client.closed_with(timeout=2 * UNIT) == 1011


def test_close_between_fragments_ends_normally(client: RawClient) -> None:
    """A close frame inside a fragmented message is a normal close (Autobahn 7.1.5)."""
    client.send(
        raw_frame(TEXT, b"frag", fin=False),
        raw_frame(CLOSE, struct.pack("!H", 1000)),
        raw_frame(CONT, b"ment"),
    )
    assert client.closed_with() == 1000


def test_client_close_code_is_echoed(client: RawClient) -> None:
    """The client's close code comes back in the server's close frame."""
    client.send(raw_frame(CLOSE, struct.pack("!H", 4001) + b"bye"))
    assert client.closed_with() == 4001
