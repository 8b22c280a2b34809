"""gunicorn's settings, each through a real gunicorn process with the worker.

``tests/gunicorn/test_worker.py`` covers ``bind`` (TCP and unix), ``threads``,
``timeout``, ``graceful_timeout``, ``max_requests``, ``limit_request_*``,
``forwarded_allow_ips``, TLS and ``accesslog``; ``tests/gunicorn/test_attacks.py``
covers ``worker_connections``.  Here: the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from aiopyramid._collector import DEFAULT_GC_THRESHOLD
from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    require,
    require_module,
    running,
    wait_until,
)
from tests.harness.tls import self_signed_certificate

pytestmark = pytest.mark.server
httpx = import_required("httpx")
APP = "tests.apps.attacks:app"


def serve(*args: str, env: dict[str, str] | None = None, app: str = APP):
    """The attack app (its /env view) under gunicorn with ``args``.

    ``app`` empty: ``args`` name the application (``--paste``).
    """
    require_module("gunicorn")
    port = free_port()
    command = gunicorn_command(
        "--bind", f"127.0.0.1:{port}", *args, *([app] if app else [])
    )
    return running(command, port, env=env or {})


def env_of(process, path: str = "/env", **kwargs) -> dict:
    """The environ the application saw for GET ``path``."""
    response = httpx.get(process.url + path, timeout=10 * UNIT, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_workers_serve_from_several_processes():
    """--workers 2: two processes answer, and wsgi.multiprocess says so."""
    with serve("--workers", "2") as process:
        pids = set()

        def two_seen() -> bool:
            with httpx.Client(timeout=5 * UNIT) as client:  # a new connection
                pids.add(client.get(process.url + "/env").json()["pid"])
            return len(pids) >= 2

        wait_until(two_seen, 10)
    assert len(pids) == 2


def listen_backlog(port: int) -> int:
    """The backlog the kernel reports for the socket listening on ``port``."""
    ss = shutil.which("ss")
    require(ss is not None, "ss (Debian's iproute2) is not installed")
    out = subprocess.run(
        [ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[2])  # State Recv-Q Send-Q(: the backlog) Local Peer


@pytest.mark.parametrize("backlog", [None, "512"])
def test_the_listen_backlog_is_gunicorns(backlog):
    """--backlog (2048 by default) is what the kernel queues, not asyncio's 100.

    A burst of connections past asyncio's 100 waited a second or three for
    the clients' SYN retries (p99 2.9 s at 1,000 connections).
    """
    args = ("--backlog", backlog) if backlog else ()
    with serve(*args) as process:
        expected = int(backlog or 2048)
        wait_until(lambda: listen_backlog(process.port) == expected)


def test_keepalive_closes_idle_connections():
    """--keepalive 1: an idle kept-alive connection is closed after about 1 s."""
    with (
        serve("--keep-alive", "1") as process,
        socket.create_connection(("127.0.0.1", process.port)) as sock,
    ):
        sock.settimeout(10 * UNIT)
        sock.sendall(b"GET /env HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        while sock.recv(65536):
            pass
        assert 0.5 < time.monotonic() - started < 5 * UNIT


def test_keepalive_deadline_moves_with_each_request():
    """--keepalive 1: a connection busy for 2.5 s stays open, then closes when idle.

    The worker keeps one keep-alive timer per connection and moves its
    deadline with each request: the timer firing mid-way must not close a
    connection that has not been idle for a whole second.
    """
    with (
        serve("--keep-alive", "1") as process,
        socket.create_connection(("127.0.0.1", process.port)) as sock,
    ):
        sock.settimeout(10 * UNIT)
        busy_until = time.monotonic() + 2.5
        served = 0
        while time.monotonic() < busy_until:
            sock.sendall(b"GET /env HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            served += 1
            time.sleep(0.4)  # the client's pace is the test's input
        last = time.monotonic()
        while sock.recv(65536):
            pass
        assert served >= 6
        assert 0.5 < time.monotonic() - last < 5 * UNIT


def test_max_requests_jitter_recycles_within_the_bounds():
    """--max-requests 2 --max-requests-jitter 2: a new worker every 2 to 4 requests.

    gunicorn's ASGI worker looks at its state once a second: requests in
    that second are still served, so with one request every 0.5 s a worker
    may serve up to two more than its limit.
    """
    with serve("--max-requests", "2", "--max-requests-jitter", "2") as process:
        pids = []
        for _ in range(14):
            try:
                with httpx.Client(timeout=5 * UNIT) as client:
                    pids.append(client.get(process.url + "/env").json()["pid"])
            except httpx.TransportError:  # the worker being replaced
                pass
            time.sleep(0.5)  # the input's pace: one request every 0.5 s
    runs = [1]
    for before, after in itertools.pairwise(pids):
        if after == before:
            runs[-1] += 1
        else:
            runs.append(1)
    assert len(runs) >= 3 and max(runs) <= 6, pids


def test_limit_request_field_size():
    """--limit-request-field-size 100: a longer header field gets 431."""
    with serve("--limit-request-field_size", "100") as process:
        response = httpx.get(process.url + "/env", headers={"X-Long": "v" * 200})
        assert response.status_code == 431
        assert env_of(process, headers={"X-Short": "v"})["HTTP_X_SHORT"] == "v"


@pytest.mark.parametrize(
    ("header_map", "expected"),
    [("drop", None), ("dangerous", "6.6.6.6"), ("refuse", 400)],
)
def test_header_map(header_map, expected):
    """--header-map decides about X_Forwarded_For, in gunicorn and the bridge."""
    with serve("--header-map", header_map) as process:
        response = httpx.get(
            process.url + "/env",
            headers={"X_Forwarded_For": "6.6.6.6"},
            timeout=10 * UNIT,
        )
        if expected == 400:
            assert response.status_code == 400
            return
        seen = response.json()
        assert seen.get("HTTP_X_FORWARDED_FOR") == expected


def test_forwarded_allow_ips_excludes_others():
    """X-Forwarded-Proto from an address not in forwarded_allow_ips is ignored."""
    with serve("--forwarded-allow-ips", "10.9.9.9") as process:
        seen = env_of(process, headers={"X-Forwarded-Proto": "https"})
    assert seen["wsgi.url_scheme"] == "http"


def test_root_path_becomes_script_name():
    """--root-path /app: SCRIPT_NAME is /app and PATH_INFO the rest."""
    with serve("--root-path", "/app") as process:
        seen = env_of(process, "/app/env")
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/app", "/env")


def test_script_name_from_the_environment():
    """SCRIPT_NAME in the environment (as for gunicorn's WSGI workers) is root_path."""
    with serve("--env", "SCRIPT_NAME=/mounted/") as process:
        seen = env_of(process, "/mounted/env")
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/mounted", "/env")


def collector_of(process) -> dict:
    """The worker's garbage collector, as its /gc view reports it."""
    return env_of(process, "/gc")


def test_the_worker_raises_the_collectors_first_threshold():
    """By default the youngest generation waits for 50,000 objects, not 700."""
    with serve() as process:
        seen = collector_of(process)
    assert seen["threshold"][0] == DEFAULT_GC_THRESHOLD
    assert seen["threshold"][1:] == [10, 10]  # the older ones are Python's
    assert seen["frozen"] > 0  # aiopyramid.gc_freeze, on by default


@pytest.mark.parametrize(("value", "expected"), [("1234", 1234), ("0", 700)])
def test_gc_threshold_setting(tmp_path, value, expected):
    """aiopyramid.gc_threshold sets it; 0 keeps Python's own."""
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\nuse = call:tests.apps.attacks:main\n"
        f"aiopyramid.gc_threshold = {value}\n"
    )
    with serve("--paste", str(ini), app="") as process:
        assert collector_of(process)["threshold"][0] == expected


def test_a_bad_gc_threshold_stops_the_worker_with_its_name(tmp_path):
    """A threshold that is not a whole number is a boot error naming the setting."""
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\nuse = call:tests.apps.attacks:main\n"
        "aiopyramid.gc_threshold = lots\n"
    )
    port = free_port()
    command = gunicorn_command("--bind", f"127.0.0.1:{port}", "--paste", str(ini))
    result = subprocess.run(command, capture_output=True, text=True, timeout=60 * UNIT)
    assert result.returncode != 0
    assert "aiopyramid.gc_threshold must be a whole number, 0 or more, not 'lots'" in (
        result.stderr
    )


def test_http2_clients_reach_coroutine_views(tmp_path):
    """--http-protocols h2,h1 with TLS: an HTTP/2 client gets coroutine answers."""
    require_module("h2")
    cert, key = self_signed_certificate(tmp_path)
    args = ("--certfile", str(cert), "--keyfile", str(key))
    with serve(*args, "--http-protocols", "h2,h1") as process:
        url = f"https://127.0.0.1:{process.port}"
        trust = ssl.create_default_context(cafile=str(cert))

        async def main():
            async with httpx.AsyncClient(
                http2=True, verify=trust, timeout=20 * UNIT
            ) as client:
                calls = [client.get(url + "/sleep?s=0.5") for _ in range(20)]
                started = time.monotonic()
                answers = await asyncio.gather(*calls)
                return answers, time.monotonic() - started

        answers, took = asyncio.run(main())
    assert {a.http_version for a in answers} == {"HTTP/2"}
    assert [a.text for a in answers] == ["slept 0.5"] * 20
    assert took < 5 * UNIT  # the waits overlap on one connection


def test_errorlog_receives_tracebacks(tmp_path):
    """--error-logfile: a failing view's traceback lands in that file."""
    log = tmp_path / "error.log"
    with serve("--error-logfile", str(log)) as process:
        assert httpx.get(process.url + "/boom").status_code == 500
        wait_until(lambda: "RuntimeError: boom" in log.read_text())


RELOADED = """
from pyramid.config import Configurator
from pyramid.response import Response


def hello(request):
    return Response("VERSION")


with Configurator() as config:
    config.include("aiopyramid")
    config.add_route("hello", "/")
    config.add_view(hello, route_name="hello")
app = config.make_wsgi_app()
"""


def test_reload_serves_changed_code(tmp_path):
    """--reload: changing the application's module restarts the worker on it."""
    module = tmp_path / "reloaded_app.py"
    module.write_text(RELOADED.replace("VERSION", "one"))
    with serve(
        "--reload",
        "--chdir",
        str(tmp_path),
        app="reloaded_app:app",
    ) as process:
        assert httpx.get(process.url + "/").text == "one"
        # The input: a change a second later, so that the file's mtime differs.
        time.sleep(1.1)
        module.write_text(RELOADED.replace("VERSION", "two"))

        def reloaded() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(process.url + "/", timeout=5 * UNIT).text == "two"
            return False

        wait_until(reloaded, 20)


def test_access_log_format_atoms(tmp_path):
    """access_log_format's atoms: request line, status, bytes, a request header."""
    log: Path = tmp_path / "access.log"
    args = ("--access-logfile", str(log), "--access-logformat", "%(r)s|%(s)s|%(b)s")
    with serve(*args) as process:
        body = httpx.get(process.url + "/env?q=1").content
        wait_until(lambda: "GET /env?q=1" in log.read_text())
    assert f"GET /env?q=1 HTTP/1.1|200|{len(body)}" in log.read_text()
    assert json.loads(body)["PATH_INFO"] == "/env"
