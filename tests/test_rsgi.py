"""aiopyramid.rsgi under a real granian (``--interface rsgi``) with real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator

import pytest

from aiopyramid import rsgi
from aiopyramid._rsgi_http import _address
from tests.apps.rsgi import FILE
from tests.harness.raw_http import exchange, raw_get
from tests.harness.servers import (
    UNIT,
    ServerProcess,
    free_port,
    granian,
    granian_command,
    import_required,
    require_module,
    wait_until,
)

pytestmark = pytest.mark.server
httpx = import_required("httpx")
import_required("granian")

TARGET = "tests.apps.rsgi:application"
HEAD = b"Host: 127.0.0.1\r\n"


@contextlib.contextmanager
def serve(**options: object) -> Iterator[ServerProcess]:
    """The RSGI test application under granian, with these make_rsgi_app options."""
    require_module("granian")
    env = {"AIOPYRAMID_TEST_RSGI": json.dumps(options)}
    with granian(TARGET, env=env) as process:
        yield process


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """The RSGI test application with the default options."""
    with serve() as process:
        yield process


def events(server: ServerProcess) -> list[str]:
    """What the server's views recorded so far."""
    return httpx.get(server.url + "/events-seen").json()["events"]


def status_of(answer: bytes) -> int:
    """The status code of the first response in ``answer``."""
    return int(answer.split(b" ", 2)[1])


def test_views_answer(server):
    """Plain views (on the pool) and coroutine views (on the loop) answer."""
    assert httpx.get(server.url + "/hello").text == "Hello plain"
    assert httpx.get(server.url + "/ahello").text == "Hello coroutine"
    env = httpx.get(server.url + "/environ?a=1").json()
    assert env["thread"].startswith(("aiopyramid", "asyncio"))
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["QUERY_STRING"] == "a=1"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", str(server.port))
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"


def test_http_1_0_is_named_so(server):
    """granian says "1" for HTTP/1.0: the environ says HTTP/1.0."""
    answer = exchange(server.port, b"GET /environ HTTP/1.0\r\n\r\n")
    assert status_of(answer) == 200, answer[:300]
    assert b'"SERVER_PROTOCOL": "HTTP/1.0"' in answer


def test_waits_overlap(server):
    """50 coroutine views awaiting sleep(1) run at once on granian's loop."""

    async def main() -> list[int]:
        calls = (raw_get(server.port, "/sleep?s=1") for _ in range(50))
        return [status for status, _ in await asyncio.gather(*calls)]

    started = time.monotonic()
    assert asyncio.run(main()) == [200] * 50
    assert time.monotonic() - started < 3 * UNIT


def test_streamed_and_generated_bodies(server):
    """A generated body streams whole; an async iterable body streams too."""
    streamed = httpx.get(server.url + "/stream?mb=3", timeout=30 * UNIT).content
    assert len(streamed) > 3 * 2**20
    assert streamed.startswith(b"x" * 65536)
    with httpx.stream("GET", server.url + "/events?n=2", timeout=10 * UNIT) as answer:
        lines = [line for line in answer.iter_lines() if line]
    assert lines == ["data: tick 0", "data: tick 1"]


def test_upload_is_read_whole(server):
    """A 3 MB body (spooled past 1 MiB) reaches the view whole."""
    body = b"0123456789" * 300_000
    result = httpx.post(server.url + "/upload", content=body, timeout=30 * UNIT)
    assert result.json()["size"] == len(body)
    chunked = httpx.post(
        server.url + "/upload", content=iter([b"a" * 1000, b"b" * 1000])
    ).json()
    assert chunked["size"] == 2000


def test_file_wrapper_sends_the_file(server):
    """A coroutine view's FileResponse goes out through wsgi.file_wrapper."""
    answer = httpx.get(server.url + "/afile")
    assert answer.status_code == 200
    assert answer.content == FILE.read_bytes()
    assert answer.headers["content-length"] == str(FILE.stat().st_size)
    assert "file-wrapper:True" in events(server)
    head = httpx.head(server.url + "/afile")
    assert head.status_code == 200 and head.content == b""
    ranged = httpx.get(server.url + "/afile", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206
    assert ranged.content == FILE.read_bytes()[:10]
    # A plain view runs on a pool thread, where the file wrapper is gone.
    assert httpx.get(server.url + "/file").content == FILE.read_bytes()


def test_failure_answers_500_and_is_reported(server):
    """A failing view gets a 500, one failure record and an access line."""
    answer = httpx.get(server.url + "/boom")
    assert answer.status_code == 500
    assert answer.text == "Internal Server Error."
    wait_until(lambda: '"GET /boom HTTP/1.1" failed in' in server.log())
    wait_until(lambda: '"GET /boom HTTP/1.1" 500' in server.log())


def test_header_with_line_break_answers_500(server):
    """A response header containing CR/LF is never sent: a logged 500 instead."""
    answer = exchange(
        server.port, b"GET /crlf HTTP/1.1\r\n" + HEAD + b"Connection: close\r\n\r\n"
    )
    assert status_of(answer) == 500, answer[:300]
    assert b"evil" not in answer


def test_client_that_leaves_cancels_its_request(server):
    """The view gets ClientDisconnected and the access line says 499."""
    before = events(server).count("wait-started")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /wait?s=30 HTTP/1.1\r\n" + HEAD + b"\r\n")
        wait_until(lambda: events(server).count("wait-started") > before)
    wait_until(lambda: "wait-disconnected" in events(server), 10)
    wait_until(lambda: '"GET /wait?s=30 HTTP/1.1" 499' in server.log())


def test_a_body_cut_off_never_reaches_the_view(server):
    """A client that leaves mid-body: no view runs on half a body; the line says 499."""
    line = '"POST /upload?cut HTTP/1.1" 499'
    before = server.log().count(line)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /upload?cut HTTP/1.1\r\n"
            + HEAD
            + b"Content-Length: 100\r\n\r\n"
            + b"x" * 10
        )
        # Leave once the body is being read (granian drops a request whose
        # connection closed before it reached the application).
        time.sleep(0.3)
    wait_until(lambda: server.log().count(line) > before)
    assert '"POST /upload?cut HTTP/1.1" 200' not in server.log()


def test_a_chunked_body_cut_off_looks_complete(server):
    """granian ends a chunked body cut off as it ends one with trailers.

    The view then runs on the part that came (docs/security.rst): here its
    answer, to nobody, says it counted 5 bytes.
    """
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /upload?chunked-cut HTTP/1.1\r\n"
            + HEAD
            + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        time.sleep(0.3)  # as above
    wait_until(lambda: '"POST /upload?chunked-cut HTTP/1.1" 200' in server.log())
    trailers = exchange(
        server.port,
        b"POST /upload HTTP/1.1\r\n" + HEAD + b"Transfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    )
    assert status_of(trailers) == 200, trailers[:300]
    assert b'"size": 5' in trailers


def test_websockets_are_refused_cleanly(server):
    """A websocket handshake is answered 403, with one warning that says why."""
    answer = exchange(
        server.port,
        b"GET /ws HTTP/1.1\r\n" + HEAD + b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        timeout=5,
    )
    assert status_of(answer) == 403, answer[:300]
    wait_until(lambda: "Websockets are not served over RSGI yet" in server.log())


def test_body_limit_413():
    """A body declared or sent over max_body_size is refused with 413."""
    with serve(max_body_size=1000) as server:
        declared = exchange(
            server.port,
            b"POST /upload HTTP/1.1\r\n" + HEAD + b"Content-Length: 1001\r\n\r\n",
        )
        assert status_of(declared) == 413, declared[:300]
        chunked = httpx.post(
            server.url + "/upload", content=iter([b"a" * 600, b"b" * 600])
        )
        assert chunked.status_code == 413
        assert (
            httpx.post(server.url + "/upload", content=b"a" * 1000).json()["size"]
            == 1000
        )
        wait_until(lambda: '"POST /upload HTTP/1.1" 413' in server.log())


def test_stalled_body_408():
    """A body that stops coming is answered 408 after body_timeout."""
    with serve(body_timeout=1) as server:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(15 * UNIT)
            sock.sendall(
                b"POST /upload HTTP/1.1\r\n" + HEAD + b"Content-Length: 100\r\n\r\nxx"
            )
            answer = sock.recv(65536)
        assert status_of(answer) == 408, answer[:300]
        # Not before the timeout (1 s), and well before granian's own (30 s).
        assert 1 <= time.monotonic() - started < 10 * UNIT


def test_root_path_becomes_script_name():
    """root_path is SCRIPT_NAME and is taken off PATH_INFO."""
    with serve(root_path="/prefix") as server:
        env = httpx.get(server.url + "/prefix/environ").json()
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/prefix", "/environ")
        assert httpx.get(server.url + "/prefix/hello").text == "Hello plain"


def test_script_name_from_the_environment():
    """Without root_path, the SCRIPT_NAME environment variable mounts the app."""
    env = {"AIOPYRAMID_TEST_RSGI": "{}", "SCRIPT_NAME": "/mounted/"}
    with granian(TARGET, env=env) as server:
        seen = httpx.get(server.url + "/mounted/environ").json()
        assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/mounted", "/environ")


def test_concurrency_budget_503():
    """Past max_concurrency, requests get 503 with Retry-After."""
    with serve(max_concurrency=2) as server:

        async def main() -> list[tuple[int, bytes]]:
            calls = [raw_get(server.port, "/sleep?s=1.5") for _ in range(5)]
            return await asyncio.gather(*calls)

        answers = asyncio.run(main())
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200, 200, 503, 503, 503]
        busy = exchange(
            server.port,
            b"GET /sleep?s=0 HTTP/1.1\r\n" + HEAD + b"Connection: close\r\n\r\n",
        )
        assert status_of(busy) == 200
        refused = [body for status, body in answers if status == 503]
        assert refused[0].startswith(b"Service Unavailable")


def test_retry_after_on_503():
    """The 503 of the budget says when to come back."""
    with serve(max_concurrency=1) as server:
        answers: list[bytes] = []

        def refused() -> bool:
            """A request past the budget is refused."""
            answers.append(
                exchange(
                    server.port,
                    b"GET /hello HTTP/1.1\r\n" + HEAD + b"Connection: close\r\n\r\n",
                )
            )
            return status_of(answers[-1]) == 503

        with socket.create_connection(("127.0.0.1", server.port)) as held:
            held.sendall(b"GET /wait?s=30 HTTP/1.1\r\n" + HEAD + b"\r\n")
            wait_until(refused)
        assert re.search(rb"(?i)\r\nretry-after: 1\r\n", answers[-1]), answers[-1]


def test_never_reading_client_and_the_send_deadline():
    """granian takes a streamed body whole, read or not: the deadline never fires.

    granian 2.8.9's ``response_stream`` transport applies no back-pressure:
    ``send_bytes`` returns at once while the client reads nothing, so the
    view's 16 MiB generator runs to its end and the response is logged
    ``200`` before the client has read a byte.  docs/security.rst says so.
    """
    with serve(send_timeout=1) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /stream?mb=16 HTTP/1.1\r\n" + HEAD + b"\r\n")
            wait_until(lambda: '"GET /stream?mb=16 HTTP/1.1" 200' in server.log())
            assert "stream-closed" in httpx.get(server.url + "/events-seen").text
        assert "aiopyramid.send_timeout" not in server.log()


def test_loop_end_hook_releases_the_loop(tmp_path):
    """granian calls __rsgi_del__ when it stops: broadcast closed, pools shut down."""
    port = free_port()
    process = ServerProcess(
        granian_command(TARGET, port),
        port,
        env={"AIOPYRAMID_TEST_RSGI": "{}"},
        log=tmp_path / "granian.log",
    )
    try:
        process.wait_ready()
        assert httpx.get(process.url + "/hello").text == "Hello plain"
    finally:
        process.stop()
    assert "granian stopped serving on its loop" in process.log()


def test_addresses_of_rsgi():
    """granian's "host:port" addresses, IPv6 in brackets, or none."""
    assert _address("127.0.0.1:80") == ("127.0.0.1", 80)
    assert _address("[::1]:8000") == ("::1", 8000)
    assert _address("") is None
    assert _address("/run/sock") is None


def test_make_rsgi_app_takes_the_bridge_settings():
    """make_rsgi_app reads the settings make_asgi_app reads, and root_path."""
    from tests.apps.rsgi import app

    served = rsgi.make_rsgi_app(app, max_body_size=5, root_path="/x/")
    assert served.bridge.max_body_size == 5
    assert served.root_path == "/x"
    assert served.bridge.access_logger is not None  # aiopyramid.access_log


def test_http2_requests(server):
    """HTTP/2 (cleartext, prior knowledge): the environ says so; bodies are read."""
    import_required("h2")
    with httpx.Client(http1=False, http2=True, base_url=server.url) as client:
        answer = client.get("/environ")
        assert answer.http_version == "HTTP/2"
        env = answer.json()
        assert env["SERVER_PROTOCOL"] == "HTTP/2"
        assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"
        uploaded = client.post("/upload", content=iter([b"a" * 70000, b"b" * 5]))
        assert uploaded.json()["size"] == 70005
        assert len(client.get("/stream?mb=1").content) > 2**20
