"""The worker's direct HTTP/1 path, seen from raw sockets.

``AsyncGunicornWorker`` serves plain HTTP/1 requests straight from gunicorn's
parser (``aiopyramid/gunicorn/_http1.py``) and frames responses itself.
Each test sends bytes on a socket and reads the answer back with ``h11``, a
maintained HTTP/1.1 implementation, as a client: framing mistakes (a body
after a HEAD, a length that lies, a lost pipelined request) show up as h11
errors or wrong events.  The attack tests (``test_attacks.py``) run against
this path too.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    running,
    wait_until,
)

h11 = import_required("h11")
import_required("gunicorn")

pytestmark = pytest.mark.server

APP = "tests.apps.framing:app"


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("framing") / "notes.txt"


@pytest.fixture(scope="module")
def server(notes: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    port = free_port()
    log = tmp_path_factory.mktemp("framing-log") / "access.log"
    hooks = tmp_path_factory.mktemp("framing-hooks") / "hooks.py"
    hooks.write_text(
        "def pre_request(worker, req):\n"
        f"    open({str(notes)!r}, 'a').write('pre ' + req.path + '\\n')\n"
        "def post_request(worker, req, environ, resp):\n"
        f"    open({str(notes)!r}, 'a').write('post ' + str(resp.status) + '\\n')\n"
        "    if req.query == 'hook-fails':\n"
        "        raise RuntimeError('the hook failed')\n"
    )
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        str(log),
        "-c",
        str(hooks),
        APP,
    )
    with running(command, port, env={"AIOPYRAMID_TEST_NOTES": str(notes)}) as process:
        process.access_log = log  # type: ignore[attr-defined]
        yield process


def exchange(port: int, data: bytes, methods: list[str]) -> list[tuple[object, bytes]]:
    """Send ``data``; read one response per method in ``methods`` with h11.

    Returns (h11.Response, body) pairs; fails on any framing h11 refuses.
    """
    client = h11.Connection(h11.CLIENT)
    answers: list[tuple[object, bytes]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10 * UNIT) as sock:
        sock.sendall(data)
        for method in methods:
            # h11 needs to know what was asked to frame the answer (HEAD).
            client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
            client.send(h11.EndOfMessage())
            head, body = None, b""
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    pytest.fail("the connection closed mid-response")
            answers.append((head, body))
            if (
                client.our_state is h11.MUST_CLOSE
                or client.their_state is h11.MUST_CLOSE
            ):
                break
            client.start_next_cycle()
    return answers


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def header(response: object, name: bytes) -> bytes | None:
    return dict(response.headers).get(name)  # type: ignore[attr-defined]


def test_head_has_the_headers_and_no_body_then_the_connection_goes_on(server):
    data = request("HEAD", "/hello") + request("GET", "/hello")
    (head, head_body), (get, get_body) = exchange(server.port, data, ["HEAD", "GET"])
    assert head.status_code == get.status_code == 200
    assert header(head, b"content-length") == b"12"
    assert head_body == b""
    assert get_body == b"Hello, world"


def test_statuses_without_a_body(server):
    data = request("GET", "/no_content") + request("GET", "/not_modified")
    data += request("GET", "/hello")
    answers = exchange(server.port, data, ["GET", "GET", "GET"])
    (no_content, body204), (not_modified, body304), (hello, body) = answers
    assert (no_content.status_code, body204) == (204, b"")
    assert header(no_content, b"content-length") is None
    assert (not_modified.status_code, body304) == (304, b"")
    assert header(not_modified, b"etag") == b'"v1"'
    assert (hello.status_code, body) == (200, b"Hello, world")


def test_a_generated_body_is_chunked_then_the_connection_goes_on(server):
    data = request("GET", "/stream") + request("GET", "/hello")
    (stream, body), (_, hello) = exchange(server.port, data, ["GET", "GET"])
    assert header(stream, b"transfer-encoding") == b"chunked"
    assert body == b"one,two,three"
    assert hello == b"Hello, world"


def test_a_generated_body_to_http_1_0_ends_with_the_connection(server):
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=10 * UNIT
    ) as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"chunked" not in head.lower()
    assert body == b"one,two,three"


def test_a_body_shorter_than_announced_ends_the_connection(server):
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=10 * UNIT
    ) as sock:
        sock.sendall(request("GET", "/short") + request("GET", "/hello"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 ") == 1  # closed: the second is not served
    assert answer.endswith(b"\r\n\r\n12345")


def test_a_body_longer_than_announced_is_cut_and_the_connection_goes_on(server):
    data = request("GET", "/long") + request("GET", "/hello")
    (long, body), (_, hello) = exchange(server.port, data, ["GET", "GET"])
    assert header(long, b"content-length") == b"5"
    assert body == b"12345"
    assert hello == b"Hello, world"


def test_pipelined_requests_are_answered_in_order(server):
    bodies = [f"body {n}".encode() * (n + 1) for n in range(5)]
    data = b"".join(request("POST", "/echo", body=body) for body in bodies)
    answers = exchange(server.port, data, ["POST"] * 5)
    assert [body for _, body in answers] == bodies


def test_expect_100_continue_gets_its_100_then_the_answer(server):
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=10 * UNIT
    ) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"ping")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\nping")


def test_a_client_that_leaves_cancels_its_request(server, notes):
    before = notes.read_text().count("slow unwound") if notes.exists() else 0
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=10 * UNIT
    ) as sock:
        sock.sendall(request("GET", "/slow"))
        wait_until(lambda: notes.exists() and "slow started" in notes.read_text())
    wait_until(lambda: notes.read_text().count("slow unwound") > before)


def test_access_log_and_hooks_see_every_request(server, notes):
    """Served, refused by aiopyramid (413) and abandoned (499) requests."""
    exchange(server.port, request("GET", "/hello"), ["GET"])
    ((refused, _),) = exchange(
        server.port, request("POST", "/echo", body=b"x" * 5000), ["POST"]
    )
    assert refused.status_code == 413
    started = notes.read_text().count("slow started") if notes.exists() else 0
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=10 * UNIT
    ) as sock:
        sock.sendall(request("GET", "/slow"))
        wait_until(lambda: notes.read_text().count("slow started") > started)
    log: Path = server.access_log

    def statuses() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for line in log.read_text().splitlines() if log.exists() else []:
            match = COMBINED.match(line)
            assert match, line
            found.setdefault(match.group(1), []).append(match.group(2))
        return found

    wait_until(lambda: "499" in statuses().get("GET /slow", []))
    assert "200" in statuses()["GET /hello"]
    assert "413" in statuses()["POST /echo"]
    text = notes.read_text()
    assert "pre /hello" in text and "pre /slow" in text
    for status in ("200 OK", "413 Content Too Large", "499 Client Closed Request"):
        assert f"post {status}" in text


#: gunicorn's default access_log_format, the combined log format.
COMBINED = re.compile(
    r"^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
    r'"(\w+ \S+) HTTP/1\.[01]" (\d{3}) (\d+) "-" "-"$'
)


def test_a_client_still_sending_gets_its_refusal(server):
    """A body over the limit, sent without reading: the 413 arrives, not a reset.

    The client sends for a second before it looks for an answer.  The worker
    shuts its side after the answer and drops what the client still sends
    (a lingering close): closing at once would answer those bytes with a
    reset, and a reset makes the client's system drop the answer unread.
    """
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=10 * UNIT
    ) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
        )
        sock.setblocking(False)
        until = time.monotonic() + 1
        while time.monotonic() < until:  # sending only, as a careless client does
            select.select([], [sock], [], 0.1)
            with contextlib.suppress(BlockingIOError):
                sock.send(b"x" * 65536)
        sock.setblocking(True)
        answer = sock.recv(65536)  # a reset would raise here
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


def test_a_failing_post_request_hook_is_logged_and_the_connection_goes_on(server):
    data = request("GET", "/hello?hook-fails") + request("GET", "/hello")
    (first, body), (_, second) = exchange(server.port, data, ["GET", "GET"])
    assert first.status_code == 200 and body == second == b"Hello, world"
    wait_until(lambda: "Exception in post_request hook" in server.log())
    assert "RuntimeError: the hook failed" in server.log()
