"""The ASGI bridge under uvicorn, hypercorn and granian, and on its own."""

from __future__ import annotations

import asyncio
import time

import pytest
from pyramid.exceptions import ConfigurationError

from aiopyramid import asgi
from aiopyramid._environ import LimitExceeded, Limits, environ_of_scope
from tests.harness.raw_http import raw_get
from tests.harness.servers import (
    UNIT,
    console_script,
    free_port,
    import_required,
    python_module,
    require_module,
    running,
)

httpx = import_required("httpx")

SERVERS = {
    "uvicorn": lambda port, app: python_module(
        "uvicorn", "--port", str(port), "--no-access-log", app
    ),
    "hypercorn": lambda port, app: python_module(
        "hypercorn", "--bind", f"127.0.0.1:{port}", app
    ),
    "granian": lambda port, app: [
        console_script("granian"),
        "--interface",
        "asgi",
        "--port",
        str(port),
        "--workers",
        "1",
        app,
    ],
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request):
    """tests.apps.serving:asgi under each ASGI server in turn."""
    name = request.param
    require_module(name)
    require_module("httpx")
    port = free_port()
    with running(SERVERS[name](port, "tests.apps.serving:asgi"), port) as process:
        process.name = name
        yield process


@pytest.fixture(scope="module")
def raw():
    """The raw WSGI test application under uvicorn, mounted at /prefix."""
    require_module("uvicorn")
    port = free_port()
    command = python_module(
        "uvicorn",
        "--port",
        str(port),
        "--root-path",
        "/prefix",
        "--no-access-log",
        "tests.apps.raw:asgi",
    )
    with running(command, port) as process:
        yield process


@pytest.mark.server
def test_views_served(server):
    """Plain and coroutine views answer under every ASGI server."""
    assert httpx.get(server.url + "/hello").text == "Hello plain"
    assert httpx.get(server.url + "/ahello").text == "Hello coroutine"


@pytest.mark.server
def test_waits_overlap(server):
    """100 coroutine views awaiting sleep(1) run at once on the server's loop."""

    async def main() -> list[int]:
        calls = (raw_get(server.port, "/sleep?s=1") for _ in range(100))
        return [status for status, _ in await asyncio.gather(*calls)]

    started = time.monotonic()
    assert asyncio.run(main()) == [200] * 100
    assert time.monotonic() - started < 3 * UNIT


@pytest.mark.server
def test_upload_and_stream(server):
    """Bodies go in whole and generated bodies come out whole."""
    body = b"0123456789" * 300_000
    result = httpx.post(server.url + "/upload", content=body, timeout=30 * UNIT).json()
    assert result["size"] == len(body)
    streamed = httpx.get(server.url + "/stream?mb=3", timeout=30 * UNIT).content
    assert len(streamed) > 3 * 2**20


@pytest.mark.server
def test_server_sent_events(server):
    """Async iterable bodies stream under every server."""
    with httpx.stream("GET", server.url + "/events?n=2", timeout=10 * UNIT) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines == ["data: tick 0", "data: tick 1"]


@pytest.mark.server
def test_root_path_becomes_script_name(raw):
    """The ASGI root_path is SCRIPT_NAME; PATH_INFO is what follows it."""
    # uvicorn --root-path: a proxy has stripped /prefix already.
    assert httpx.get(raw.url + "/names/x").json() == ["/prefix", "/names/x"]
    assert httpx.get(raw.url + "/write").text == "written and returned"


@pytest.mark.server
def test_start_response_exc_info(raw):
    """exc_info replaces headers before the body; after it, the error is re-raised."""
    early = httpx.get(raw.url + "/exc-info")
    assert early.status_code == 503
    assert early.headers["retry-after"] == "7"
    assert early.text == "try later"
    late = httpx.get(raw.url + "/exc-info-late")
    assert late.status_code == 200
    assert late.text == "partial re-raised"


@pytest.mark.server
def test_start_response_rules(raw):
    """A second start_response without exc_info fails; no start_response gives 500."""
    assert "second time" in httpx.get(raw.url + "/twice").text
    assert httpx.get(raw.url + "/no-start").status_code == 500
    empty = httpx.get(raw.url + "/empty")
    assert empty.status_code == 204
    assert empty.headers["x-empty"] == "yes"


@pytest.mark.server
def test_generator_body_and_repeated_headers(raw):
    """A generator body is sent whole, empty chunks skipped, repeated headers kept."""
    response = httpx.get(raw.url + "/generator")
    assert response.text == "one two"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


@pytest.mark.server
@pytest.mark.parametrize("path", ["/gaps", "/holes"])
def test_empty_chunks_and_writes_are_skipped(raw, path):
    """Empty writes and empty chunks (iterator or list) leave the body intact."""
    response = httpx.get(raw.url + path)
    assert (response.status_code, response.text) == (200, "leftright")


@pytest.mark.server
def test_wsgi_input_methods(raw):
    """wsgi.input supports read(n), readline(n), readlines() and iteration."""
    body = b"l1\nl2\nl3\nl4\n"
    result = httpx.post(raw.url + "/input-methods", content=body).json()
    assert result == {
        "first": "l1\n",
        "part": "l2\n",
        "second": "l3\n",
        "rest": ["l4\n"],
    }
    result = httpx.post(raw.url + "/input-iter", content=b"a\nb").json()
    assert result == {"lines": ["a\n", "b"], "left": ""}


def test_lifespan_is_acknowledged():
    """Lifespan startup and shutdown are answered with their completions."""
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    bridge = asgi.make_asgi_app(lambda environ, start_response: [])
    asyncio.run(bridge({"type": "lifespan"}, receive, send))
    assert sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


def test_unknown_scope_is_refused():
    """A scope type the bridge does not serve raises with its name."""
    bridge = asgi.make_asgi_app(lambda environ, start_response: [])
    with pytest.raises(ValueError, match="'telepathy'"):
        asyncio.run(bridge({"type": "telepathy"}, None, None))


def test_body_settings_are_read_and_checked():
    """aiopyramid.max_body_size and .body_timeout: defaults, 0 turns off, -3 refused."""

    class App:
        class registry:
            settings: dict = {}

        def __call__(self, environ, start_response):
            return []

    bridge = asgi.make_asgi_app(App())
    assert bridge.max_body_size == asgi.DEFAULT_MAX_BODY_SIZE == 32 * 2**20
    assert bridge.body_timeout == asgi.DEFAULT_BODY_TIMEOUT
    assert bridge.header_map == "drop"
    App.registry.settings = {
        "aiopyramid.max_body_size": "1024",
        "aiopyramid.body_timeout": "2.5",
        "aiopyramid.header_map": "refuse",
    }
    bridge = asgi.make_asgi_app(App())
    assert (bridge.max_body_size, bridge.body_timeout) == (1024, 2.5)
    assert bridge.header_map == "refuse"
    App.registry.settings = {
        "aiopyramid.max_body_size": "0",
        "aiopyramid.body_timeout": "0",
    }
    bridge = asgi.make_asgi_app(App())
    assert (bridge.max_body_size, bridge.body_timeout) == (None, None)
    App.registry.settings = {"aiopyramid.max_body_size": "-3"}
    with pytest.raises(ConfigurationError, match=r"max_body_size must be.*0 or more"):
        asgi.make_asgi_app(App())
    App.registry.settings = {"aiopyramid.header_map": "sometimes"}
    with pytest.raises(ValueError, match="drop, refuse, dangerous, not 'sometimes'"):
        asgi.make_asgi_app(App())


def test_head_limits_are_on_by_default_and_settable():
    """make_asgi_app bounds heads as gunicorn does unless settings or limits say."""

    class App:
        class registry:
            settings: dict[str, str] = {}

        def __call__(self, environ, start_response):  # pragma: no cover
            return []

    assert asgi.make_asgi_app(App()).limits == asgi.DEFAULT_LIMITS
    assert Limits(4094, 100, 8190) == asgi.DEFAULT_LIMITS
    App.registry.settings = {
        "aiopyramid.limit_request_line": "8190",
        "aiopyramid.limit_request_fields": "0",
        "aiopyramid.limit_request_field_size": "16380",
    }
    assert asgi.make_asgi_app(App()).limits == Limits(8190, 0, 16380)
    assert asgi.make_asgi_app(App(), limits=Limits(0, 0, 0)).limits == Limits(0, 0, 0)
    App.registry.settings = {"aiopyramid.limit_request_fields": "many"}
    with pytest.raises(ConfigurationError, match="limit_request_fields must be"):
        asgi.make_asgi_app(App())


def test_environ_limits_and_unix_socket_names():
    """Head limits raise with the reason; without a server address, Host names it."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/a",
        "raw_path": b"/a",
        "query_string": b"",
        "headers": [(b"host", b"example.org:81")],
        "server": None,
        "client": None,
        "root_path": "",
    }
    environ = environ_of_scope(scope, None)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "81")
    assert "REMOTE_ADDR" not in environ
    scope["headers"] = [(b"host", b"[::1]")]
    assert environ_of_scope(scope, None)["SERVER_PORT"] == "80"
    with pytest.raises(LimitExceeded, match="longer than 10 bytes"):
        environ_of_scope(scope, None, Limits(request_field_size=10))
    scope["raw_path"] = None
    scope["path"] = "/é"
    assert environ_of_scope(scope, None)["PATH_INFO"] == "/\xc3\xa9"
