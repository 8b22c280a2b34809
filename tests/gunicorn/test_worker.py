"""AsyncGunicornWorker under real gunicorn processes, with real HTTP clients."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import ssl
import tempfile
import time
from pathlib import Path

import pytest

from tests.harness.raw_http import raw_get
from tests.harness.servers import (
    ROOT,
    UNIT,
    console_script,
    free_port,
    gunicorn_command,
    import_required,
    require_module,
    running,
    wait_until,
)
from tests.harness.tls import self_signed_certificate

pytestmark = pytest.mark.server
httpx = import_required("httpx")


@pytest.fixture(autouse=True)
def _requirements() -> None:
    for name in ("gunicorn", "uvicorn", "httpx"):
        require_module(name)


@pytest.fixture(scope="module")
def access_log() -> Path:
    """Where the shared server writes its access log."""
    return Path(tempfile.mkdtemp(prefix="aiopyramid-access-")) / "access.log"


@pytest.fixture(scope="module")
def server(access_log: Path):
    """One gunicorn server (command line, one worker) shared by this module."""
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        "%(m)s %(U)s %(q)s %(s)s %(B)s %({x-test}i)s",
        "--limit-request-line",
        "200",
        "--limit-request-fields",
        "20",
        "tests.apps.serving:app",
    )
    with running(command, port, env={"AIOPYRAMID_TEST_INCLUDE": ""}) as process:
        yield process


def get(server, path: str, **kwargs) -> httpx.Response:
    """GET ``path`` from ``server``."""
    return httpx.get(server.url + path, timeout=30 * UNIT, **kwargs)


def state(server) -> dict:
    """The worker's pid, peak memory and events."""
    return get(server, "/rss").json()


def times_started(server, view: str) -> int:
    """How many times ``view`` (``sleep`` or ``block``) started so far."""
    events: list[str] = state(server)["events"]
    return events.count(f"{view}-started")


async def wait_started(server, view: str, count: int) -> None:
    """Wait (letting the loop run) until ``view`` started ``count`` times."""

    def enough() -> bool:
        return times_started(server, view) >= count

    await asyncio.to_thread(wait_until, enough, 15)


def test_command_line_serves_both_kinds_of_view(server):
    """gunicorn -k AsyncGunicornWorker app:object serves plain and coroutine views."""
    assert get(server, "/hello").text == "Hello plain"
    assert get(server, "/ahello").text == "Hello coroutine"
    assert get(server, "/missing").status_code == 404


def test_uvloop_is_used_when_installed(server):
    """The worker's loop is uvloop's when uvloop is importable."""
    require_module("uvloop")
    assert get(server, "/loop").text.startswith("uvloop")


def test_errors_answer_500_and_are_logged(server):
    """A failing view answers 500 and its traceback reaches gunicorn's error log."""
    assert get(server, "/boom").status_code == 500
    wait_until(lambda: "RuntimeError: boom" in server.log())


def test_two_hundred_waits_of_one_second_overlap(server):
    """200 concurrent coroutine views awaiting sleep(1) all finish within 3 s."""

    async def main() -> list[int]:
        calls = (raw_get(server.port, "/sleep?s=1") for _ in range(200))
        return [status for status, _ in await asyncio.gather(*calls)]

    started = time.monotonic()
    statuses = asyncio.run(main())
    assert statuses == [200] * 200
    assert time.monotonic() - started < 3 * UNIT


def test_blocking_plain_view_does_not_hold_coroutine_view(server):
    """A plain view blocking 1 s in its thread leaves coroutine views served."""

    async def main() -> float:
        async with httpx.AsyncClient(timeout=30 * UNIT) as client:
            before = times_started(server, "block")
            blocked = asyncio.ensure_future(client.get(server.url + "/block?s=1"))
            await wait_started(server, "block", before + 1)
            started = time.monotonic()
            fast = await client.get(server.url + "/ahello")
            took = time.monotonic() - started
            assert fast.status_code == 200
            assert (await blocked).text == "blocked"
            return took

    assert asyncio.run(main()) < 0.5 * UNIT


def test_environ_follows_pep_3333(server):
    """The environ carries raw query, latin-1 path, joined headers and peers."""
    response = get(
        server,
        "/environ?a=1&b=%20x",
        headers=[("X-Many", "one"), ("X-Many", "two"), ("Content-Type", "text/x")],
    )
    env = response.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["SCRIPT_NAME"] == ""
    assert env["QUERY_STRING"] == "a=1&b=%20x"
    assert env["HTTP_X_MANY"] == "one,two"
    assert env["CONTENT_TYPE"] == "text/x"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False  # one worker, as gunicorn's own say
    assert env["wsgi.run_once"] is False
    assert env["wsgi.version"] == [1, 0]


def test_path_is_decoded_as_latin1_of_raw_bytes(server):
    """A percent-encoded UTF-8 path reaches the app as latin-1 text of its bytes."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"GET /environ/%C3%A9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    # No route matches the sub-path: what matters is what Pyramid was given.
    assert data.startswith(b"HTTP/1.1 404")
    env = get(server, "/environ", params={"p": "é"}).json()
    assert env["QUERY_STRING"] == "p=%C3%A9"


def test_forwarded_proto_from_trusted_proxy(server):
    """X-Forwarded-Proto from an address in forwarded_allow_ips sets https."""
    env = get(server, "/environ", headers={"X-Forwarded-Proto": "https"}).json()
    assert env["wsgi.url_scheme"] == "https"


def test_large_upload_uses_bounded_memory(server):
    """A 50 MB upload arrives whole while the worker's peak memory grows far less."""
    before = state(server)["rss"]
    body = os.urandom(1024 * 1024) * 50
    for path in ("/upload", "/upload_plain"):
        result = httpx.post(server.url + path, content=body, timeout=60 * UNIT).json()
        assert result["size"] == len(body)
        assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert state(server)["rss"] - before < 30 * 1024


def test_chunked_upload(server):
    """A chunked body (no Content-Length) is read whole."""

    def chunks():
        for _ in range(10):
            yield b"a" * 100_000

    result = httpx.post(
        server.url + "/upload", content=chunks(), timeout=30 * UNIT
    ).json()
    assert result["size"] == 1_000_000


def test_body_over_maximum_answers_413():
    """A body over aiopyramid.max_body_size is refused with 413, declared or chunked."""
    port = free_port()
    ini = ROOT / "tests" / "apps" / "development.ini"
    command = gunicorn_command("--paste", str(ini), "--bind", f"127.0.0.1:{port}")
    with running(command, port) as process:
        too_big = b"x" * (60 * 2**20 + 1)
        response = httpx.post(
            process.url + "/upload", content=too_big, timeout=60 * UNIT
        )
        assert response.status_code == 413

        def chunks():
            for _ in range(61):
                yield b"x" * 2**20

        response = httpx.post(
            process.url + "/upload", content=chunks(), timeout=60 * UNIT
        )
        assert response.status_code == 413
        assert httpx.get(process.url + "/ahello").text == "Hello coroutine"


def test_expect_100_continue(server):
    """A client sending Expect: 100-continue gets 100 Continue, then the answer."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(5 * UNIT)
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(b"hello")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert b'"size": 5' in data


def test_generated_body_streams(server):
    """A 100 MB generated body streams: its first bytes come while the view is
    still producing it (a client that pauses holds it back), memory stays low."""

    def closed() -> int:
        return state(server)["events"].count("stream-closed")

    before, rss_before = closed(), state(server)["rss"]
    size = 0
    with httpx.stream(
        "GET", server.url + "/stream?mb=100", timeout=60 * UNIT
    ) as response:
        chunks = response.iter_raw()
        size += len(next(chunks))
        # Not reading: the kernel's buffers hold a few MB, not 100, so the
        # generator must still be waiting for this client.
        time.sleep(0.3)
        assert closed() == before, "the whole body was produced before it was sent"
        for chunk in chunks:
            size += len(chunk)
    assert size > 100 * 2**20
    wait_until(lambda: closed() == before + 1)
    assert state(server)["rss"] - rss_before < 30 * 1024


def test_disconnect_cancels_waiting_view_and_closes_body(server):
    """A client that leaves cancels its view's wait and closes a generated body."""
    before = times_started(server, "sleep")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /sleep?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: times_started(server, "sleep") > before)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /stream?mb=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(65536)
    ends = {"sleep-cancelled", "stream-closed"}
    wait_until(lambda: ends <= set(state(server)["events"]))
    events = state(server)["events"]
    assert "sleep-cancelled" in events
    assert "stream-closed" in events


def test_async_iterable_body_streams_events(server):
    """An async generator body (server-sent events) streams from the loop."""
    with httpx.stream("GET", server.url + "/events?n=3", timeout=10 * UNIT) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines == ["data: tick 0", "data: tick 1", "data: tick 2"]
    wait_until(lambda: "events-closed" in state(server)["events"])
    assert "events-closed" in state(server)["events"]


def test_access_log_uses_gunicorn_format(server, access_log):
    """Access lines follow --access-logformat, request headers included."""
    get(server, "/ahello?q=1", headers={"X-Test": "marker"})
    line = "GET /ahello q=1 200 15 marker"
    wait_until(lambda: line in access_log.read_text())
    assert line in access_log.read_text()


def test_request_head_limits(server):
    """limit_request_line answers 414 and limit_request_fields 431, as gunicorn."""
    assert get(server, "/ahello?" + "x" * 300).status_code == 414
    headers = [(f"X-H{i}", "v") for i in range(30)]
    assert get(server, "/ahello", headers=headers).status_code == 431
    assert get(server, "/ahello").status_code == 200


def test_paste_ini_and_unix_socket():
    """gunicorn --paste development.ini serves the app, here on a unix socket."""
    path = tempfile.mktemp(prefix="aiopyramid-", suffix=".sock")
    ini = ROOT / "tests" / "apps" / "development.ini"
    command = gunicorn_command("--paste", str(ini), "--bind", f"unix:{path}")
    with running(command, 0, unix_socket=path):
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            assert client.get("http://localhost/ahello").text == "Hello coroutine"
            env = client.get("http://localhost:8080/environ").json()
    assert env["SERVER_NAME"] == "localhost"
    assert env["SERVER_PORT"] == "8080"


def test_pserve_development_ini():
    """pserve development.ini starts gunicorn with the asyncio worker."""
    port = free_port()
    ini = ROOT / "tests" / "apps" / "development.ini"
    command = [console_script("pserve"), str(ini), f"http_port={port}"]
    with running(command, port) as process:
        assert httpx.get(process.url + "/ahello").text == "Hello coroutine"
        assert httpx.get(process.url + "/hello").text == "Hello plain"
        assert "AsyncGunicornWorker" in process.log()


def test_sigterm_finishes_requests_in_flight():
    """On SIGTERM 100 requests in flight all finish, new connections are refused."""
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "10",
        "tests.apps.serving:app",
    )
    with running(command, port) as process:

        async def main() -> list[tuple[int, bytes]]:
            calls = [
                asyncio.ensure_future(raw_get(port, "/sleep?s=2.5")) for _ in range(100)
            ]
            await wait_started(process, "sleep", 100)
            process.signal(signal.SIGTERM)
            # gunicorn's worker looks at its state once a second.
            await asyncio.to_thread(wait_until, lambda: refuses(port))
            with pytest.raises(OSError):
                await raw_get(port, "/ahello")
            return await asyncio.gather(*calls)

        answers = asyncio.run(main())
        assert answers == [(200, b"slept 2.5")] * 100
        assert process.process.wait(10 * UNIT) == 0


def test_max_requests_recycles_the_worker():
    """After max_requests the worker exits and gunicorn starts a fresh one."""
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--max-requests",
        "3",
        "tests.apps.serving:app",
    )
    with running(command, port) as process:
        pids = set()

        def two_workers_seen() -> bool:
            with contextlib.suppress(httpx.TransportError):  # worker being replaced
                pids.add(
                    httpx.get(process.url + "/rss", timeout=10 * UNIT).json()["pid"]
                )
            return len(pids) >= 2

        wait_until(two_workers_seen, 10)
    assert len(pids) >= 2


def test_blocked_loop_gets_the_worker_restarted():
    """A worker whose loop is blocked past --timeout is killed and replaced."""
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "2",
        "tests.apps.serving:app",
    )
    with running(command, port) as process:
        first = httpx.get(process.url + "/rss").json()["pid"]
        try:  # the arbiter aborts the worker mid-request: 500 or a reset
            status = httpx.get(process.url + "/hog?s=30", timeout=15 * UNIT).status_code
        except httpx.TransportError:
            status = 500
        assert status == 500
        second = first

        def replaced() -> bool:
            nonlocal second
            with contextlib.suppress(httpx.TransportError):
                second = httpx.get(process.url + "/rss", timeout=2 * UNIT).json()["pid"]
            return second != first

        wait_until(replaced, 10)
        assert "WORKER TIMEOUT" in process.log()
    assert second != first


def test_uvloop_can_be_turned_off():
    """AIOPYRAMID_UVLOOP=0 keeps asyncio's own loop."""
    port = free_port()
    command = gunicorn_command("--bind", f"127.0.0.1:{port}", "tests.apps.serving:app")
    with running(command, port, env={"AIOPYRAMID_UVLOOP": "0"}) as process:
        assert httpx.get(process.url + "/loop").text.startswith("asyncio")
        body = json.loads(httpx.get(process.url + "/rss").text)
        assert body["pid"] > 0
        # The replaced loop got gunicorn's signal handlers: SIGTERM stops it.
        started = time.monotonic()
        assert process.stop() == 0
        assert time.monotonic() - started < 5 * UNIT


def test_websocket_handshake_over_the_head_limits_is_refused(server):
    """A websocket handshake with more headers than limit_request_fields gets 431."""
    require_module("websockets")
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def main() -> int:
        headers = [(f"X-H{i}", "v") for i in range(30)]
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url + "/ws", additional_headers=headers):
                pass
        return refused.value.response.status_code

    assert asyncio.run(main()) == 431


def test_tls_and_a_thread_pool(tmp_path):
    """--certfile/--keyfile serve https, and --threads sizes the plain views' pool."""
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--certfile",
        str(cert),
        "--keyfile",
        str(key),
        "--threads",
        "2",
        "tests.apps.serving:app",
    )
    with running(command, port) as process:
        url = f"https://127.0.0.1:{port}"
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trust, timeout=10 * UNIT) as client:
            assert client.get(url + "/hello").text == "Hello plain"
            env = client.get(url + "/environ").json()
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(process.url + "/hello", timeout=5 * UNIT)
    assert env["wsgi.url_scheme"] == "https"
    assert env["thread"].startswith("aiopyramid")


def test_worker_leaves_when_its_parent_dies():
    """A worker whose arbiter was killed notices the new parent and exits."""
    port = free_port()
    command = gunicorn_command("--bind", f"127.0.0.1:{port}", "tests.apps.serving:app")
    with running(command, port) as process:
        worker = httpx.get(process.url + "/rss", timeout=10 * UNIT).json()["pid"]
        process.signal(signal.SIGKILL)
        process.process.wait(10 * UNIT)
        wait_until(lambda: not worker_alive(worker), 10)  # the orphan leaves
        assert "Parent changed, shutting down" in process.log()


def refuses(port: int) -> bool:
    """Whether nothing accepts connections on ``port`` any more."""
    try:
        socket.create_connection(("127.0.0.1", port), UNIT).close()
    except ConnectionRefusedError:
        return True
    return False


def worker_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_sigint_stops_at_once_dropping_requests_in_flight():
    """SIGINT (gunicorn's quick shutdown) ends the worker without waiting for views."""
    port = free_port()
    command = gunicorn_command(
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "30",
        "tests.apps.serving:app",
    )
    with running(command, port) as process:

        async def main() -> float:
            async with httpx.AsyncClient(timeout=30 * UNIT) as client:
                call = asyncio.ensure_future(client.get(process.url + "/sleep?s=20"))
                await wait_started(process, "sleep", 1)
                started = time.monotonic()
                process.signal(signal.SIGINT)
                with pytest.raises(httpx.TransportError):
                    await call
                return time.monotonic() - started

        assert asyncio.run(main()) < 10 * UNIT
        assert process.process.wait(10 * UNIT) == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 30.0), ("", 30.0), ("5", 5.0), ("0.5", 0.5), ("0", None), ("none", None)],
)
def test_duration_settings(value, expected):
    """Durations: the default when unset, None for 0 or none, else seconds."""
    require_module("gunicorn")
    from aiopyramid.gunicorn.worker import _seconds

    settings = {} if value is None else {"aiopyramid.request_head_timeout": value}
    assert _seconds(settings, "aiopyramid.request_head_timeout", 30) == expected


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_bad_duration_setting_names_the_fix(value):
    """A duration that is not a number of seconds: an error saying what to write."""
    require_module("gunicorn")
    from pyramid.exceptions import ConfigurationError

    from aiopyramid.gunicorn.worker import _seconds

    with pytest.raises(ConfigurationError) as raised:
        _seconds(
            {"aiopyramid.websocket.ping_interval": value},
            "aiopyramid.websocket.ping_interval",
            20,
        )
    assert str(raised.value) == (
        f"aiopyramid.websocket.ping_interval must be a number of seconds, not "
        f"{value!r}. Write e.g. aiopyramid.websocket.ping_interval = 20, or 0 to "
        "turn it off."
    )
