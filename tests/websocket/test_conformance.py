"""One websocket conformance suite, with raw frames, against every server.

The same hostile and unusual frames go to the echo view under
``AsyncGunicornWorker`` (its ``websockets``-based framing), under Debian's
uWSGI (``UWSGIWebsocketMapper``, framing with ``websockets`` on uWSGI's
socket) and under uvicorn serving :func:`aiopyramid.asgi.make_asgi_app`
(uvicorn's own ``websockets`` protocol), and under granian serving
:func:`aiopyramid.rsgi.make_rsgi_app` (granian's own framing: tungstenite,
in Rust).  Each server runs with a 1 MiB message limit and keepalive pings
(granian has none); where granian differs, the test says so and asserts
what it does.  Frames are built by hand and read with the ``websockets``
client protocol (``tests/harness/raw_websocket.py``).
What only one server does stays in its own module
(``tests/gunicorn/test_websocket_frames.py``,
``tests/websocket/config/test_uwsgi_frames.py``).
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.servers import (
    UNIT,
    free_port,
    granian,
    gunicorn_command,
    import_required,
    python_module,
    require_module,
    running,
)
from tests.harness.uwsgi import uwsgi_for_tests

pytestmark = pytest.mark.server
import_required("websockets")


from tests.harness.raw_websocket import (  # noqa: E402
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    WAIT,
    RawClient,
    raw_frame,
    still_echoes,
)

MiB = 1024 * 1024
#: Seconds between the servers' keepalive pings (uWSGI counts whole seconds).
#: granian sends no keepalive pings (it has no setting for them): None.
PING_INTERVAL = {"worker": 0.5, "uwsgi": 1.0, "uvicorn": 0.5, "granian": None}
WORKER_APP = (
    "tests.apps.websockets:with_settings("
    "'aiopyramid.websocket.max_size=1048576', "
    "'aiopyramid.websocket.ping_interval=0.5', "
    "'aiopyramid.websocket.ping_timeout=0.5', "
    "'aiopyramid.request_head_timeout=0')"
)
UWSGI_INI = """\
master = true
websockets-max-size = 1024
websockets-ping-freq = 1
websockets-pong-tolerance = 1
"""


@contextlib.contextmanager
def serve(kind: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The echo view at /ws/echo under ``kind``, with a 1 MiB limit."""
    if kind == "uwsgi":
        with uwsgi_for_tests(
            request,
            "tests.apps.uwsgi:bare_application",
            "uwsgi-conformance.log",
            extra_ini=UWSGI_INI,
        ) as uwsgi:
            yield uwsgi
        return
    if kind == "granian":
        require_module("granian")
        settings = {"aiopyramid.websocket.max_size": str(MiB)}
        with granian(
            "tests.apps.websockets:rsgi_app",
            "--factory",
            env={"AIOPYRAMID_TEST_WS_SETTINGS": json.dumps(settings)},
        ) as process:
            yield process
        return
    port = free_port()
    if kind == "worker":
        require_module("gunicorn")
        command = gunicorn_command("--bind", f"127.0.0.1:{port}", WORKER_APP)
    else:
        require_module("uvicorn")
        command = python_module(
            "uvicorn",
            "--port",
            str(port),
            "--ws",
            "websockets",
            "--ws-max-size",
            str(MiB),
            "--ws-ping-interval",
            "0.5",
            "--ws-ping-timeout",
            "0.5",
            "tests.apps.websockets:asgi",
        )
    with running(command, port) as process:
        yield process


@pytest.fixture(scope="module", params=list(PING_INTERVAL))
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each server in turn, one process for the module."""
    with serve(request.param, request) as process:
        process.kind = request.param
        yield process


@pytest.fixture
def client(server: Any) -> Iterator[RawClient]:
    """A raw client connected to the echo view."""
    raw = RawClient(server)
    raw.kind = server.kind  # type: ignore[attr-defined]
    yield raw
    raw.close()


def client_kind(client: RawClient) -> str:
    """The kind of server ``client`` talks to."""
    return client.kind  # type: ignore[attr-defined,no-any-return]


def closed_with(client: RawClient, timeout: float = WAIT) -> int:
    """``client.closed_with()``; on granian, TCP may end with a reset.

    granian ends TCP as soon as it has sent its close frame, without
    waiting for the client's answer (or reading frames the client sent
    after its own close), so the client's echo of the close frame may
    meet a reset.  The close frame itself has arrived by then.
    """
    return client.closed_with(timeout, reset_ok=client_kind(client) == "granian")


def failure_code(client: RawClient, code: int) -> int:
    """The close code a server fails a connection with, where RFC 6455 says ``code``.

    granian (2.8.9) fails a connection with an empty close frame (1005
    to the client) for every broken frame or message, and ends TCP: the
    code is lost, the connection still fails as it should.
    """
    return 1005 if client_kind(client) == "granian" else code


def test_empty_message_then_hello_in_one_write(client: RawClient) -> None:
    """An empty text frame followed by "hello" in one write: both echoed."""
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
        raw_frame(CONT, "lo wörld".encode()),
    )
    pong = client.frame()
    assert pong is not None and (pong.opcode, bytes(pong.data)) == (PONG, b"inside")
    assert client.message() == (TEXT, "hello wörld".encode())


def test_fragments_one_byte_per_write(client: RawClient) -> None:
    """A fragmented message trickling in byte by byte arrives whole."""
    data = raw_frame(BINARY, b"\x00\xff", fin=False) + raw_frame(CONT, b"\x01")
    for byte in data:
        client.send(bytes([byte]))
    assert client.message() == (BINARY, b"\x00\xff\x01")


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
        pytest.param([raw_frame(CLOSE, b"\x03")], id="close-payload-of-one-byte"),
    ],
)
def test_protocol_errors_close_with_1002(
    server: Any, client: RawClient, frames: list[bytes]
) -> None:
    """Malformed frames close the connection with 1002; the server lives on."""
    client.send(*frames)
    assert closed_with(client) == failure_code(client, 1002)
    assert still_echoes(server)


def test_invalid_close_code_closes_with_1002(server: Any, client: RawClient) -> None:
    """A close frame with code 999 is answered 1002 (granian too: tungstenite
    answers that one itself, with a code)."""
    client.send(raw_frame(CLOSE, struct.pack("!H", 999)))
    assert closed_with(client) == 1002
    assert still_echoes(server)


def test_invalid_utf8_closes_with_1007(server: Any, client: RawClient) -> None:
    """A text message that is not UTF-8 closes with 1007."""
    client.send(raw_frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed"))
    assert closed_with(client) == failure_code(client, 1007)
    assert still_echoes(server)


def test_invalid_utf8_fails_before_the_message_ends(client: RawClient) -> None:
    """Invalid UTF-8 in a first fragment closes with 1007 at once, not at the end."""
    client.send(raw_frame(TEXT, b"ok \xff then", fin=False))
    assert closed_with(client) == failure_code(client, 1007)


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


def test_unsolicited_pong_is_ignored(client: RawClient) -> None:
    """A pong nobody asked for changes nothing."""
    client.send(raw_frame(PONG, b"unasked"), raw_frame(TEXT, b"after"))
    assert client.message() == (TEXT, b"after")


def test_message_over_the_limit_closes_with_1009(client: RawClient) -> None:
    """Fragments adding up to more than the 1 MiB limit close with 1009."""
    client.send(raw_frame(BINARY, b"x" * MiB, fin=False), raw_frame(CONT, b"y"))
    # granian's close frames carry no code: the adapter closes at its
    # limit, and the access line says 1009.
    assert closed_with(client, timeout=5 * UNIT) == failure_code(client, 1009)


def test_keepalive_pings_arrive_and_the_silent_client_goes(
    server: Any, client: RawClient
) -> None:
    """Pings come every interval; unanswered, the connection closes with 1011."""
    if PING_INTERVAL[server.kind] is None:
        # granian sends no pings at all: a silent client stays until TCP
        # says it is gone (docs/websockets.rst).
        client.listen(1.5)
        client.send(raw_frame(TEXT, b"alive"))
        assert client.message() == (TEXT, b"alive")
        return
    pings = 0
    receive = client.protocol.events_received

    def counting() -> list[Any]:
        nonlocal pings
        events = receive()
        pings += sum(event.opcode is PING for event in events)
        return events

    client.protocol.events_received = counting  # type: ignore[method-assign]
    client.listen(PING_INTERVAL[server.kind] * 3.5)  # answered as they come
    assert pings >= 2
    client.send(raw_frame(TEXT, b"alive"))
    assert client.message() == (TEXT, b"alive")
    client.answer_pings = False
    assert closed_with(client, timeout=15 * UNIT) == 1011


def test_close_between_fragments_ends_normally(client: RawClient) -> None:
    """A close frame inside a fragmented message is a normal close (Autobahn 7.1.5)."""
    client.send(
        raw_frame(TEXT, b"frag", fin=False),
        raw_frame(CLOSE, struct.pack("!H", 1000)),
        raw_frame(CONT, b"ment"),
    )
    assert closed_with(client) == 1000


def test_client_close_code_and_reason_are_echoed(client: RawClient) -> None:
    """The server answers a close frame with the client's code and reason."""
    client.send(raw_frame(CLOSE, struct.pack("!H", 4001) + b"bye"))
    # Then the server ends TCP (granian at once: the client's echo of the
    # close frame may meet a reset, see closed_with).
    close = client.close_frame(reset_ok=client_kind(client) == "granian")
    assert (close.code, close.reason) == (4001, "bye")
