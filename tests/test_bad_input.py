"""Bad input: fuzzed requests through the ASGI bridge, oversized heads, bodies
and frames, and slow clients under AsyncGunicornWorker and under granian
serving :func:`aiopyramid.rsgi.make_rsgi_app`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import string
import threading
import time
from urllib.parse import unquote, unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiopyramid.asgi import make_asgi_app
from tests.harness.inprocess import make_app
from tests.harness.raw_http import exchange
from tests.harness.servers import (
    UNIT,
    free_port,
    granian_command,
    gunicorn_command,
    require_module,
    running,
)

TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
#: Header value bytes a real HTTP parser lets through (no CR, LF or NUL).
VALUE_BYTES = [9, *range(0x20, 0x7F), *range(0x80, 0x100)]
FUZZ = settings(
    max_examples=int(os.environ.get("AIOPYRAMID_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,  # no .hypothesis directory in the checkout
)

segments = st.one_of(
    st.sampled_from(
        [b"..", b".", b"", b"%2F", b"%2e%2E", b"%ff", b"%C3%A9", b"%", b"%zz"]
    ),
    st.binary(max_size=8).map(lambda raw: raw.replace(b"/", b"").replace(b"?", b"")),
    st.text(max_size=6).map(
        lambda text: text.encode("utf-8").replace(b"/", b"").replace(b"?", b"")
    ),
)
raw_paths = st.lists(segments, max_size=6).map(lambda parts: b"/" + b"/".join(parts))
methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    st.text(alphabet=TOKEN, min_size=1, max_size=12),
)
header_names = st.one_of(
    st.sampled_from([b"cookie", b"content-type", b"x-many", b"accept"]),
    st.text(alphabet=TOKEN.lower(), min_size=1, max_size=20)
    .map(str.encode)
    .filter(lambda name: name != b"host"),
)
header_values = st.lists(st.sampled_from(VALUE_BYTES), max_size=40).map(bytes)
#: Host values that are RFC 3986's host[:port], and some that are not.
GOOD_HOSTS = [b"good.example", b"127.0.0.1:8000", b"[::1]:8080", b"a-b.c_d~e:"]
BAD_HOSTS = [b"good.example/evil", b"evil@good.example", b"a b", b"", b"[::zz]"]
hosts = st.lists(st.sampled_from(GOOD_HOSTS + BAD_HOSTS), max_size=2)
headers = st.tuples(
    st.lists(st.tuples(header_names, header_values), max_size=12), hosts
).map(lambda both: both[0] + [(b"host", host) for host in both[1]])
bodies = st.tuples(st.binary(max_size=3000), st.integers(1, 4), st.booleans())
queries = st.binary(max_size=40).map(lambda raw: raw.replace(b"#", b""))


def scope_for(method, raw_path, query, header_list, body, chunked) -> dict:
    """An ASGI http scope as a server would build it from these parts."""
    header_list = [
        (n, v)
        for n, v in header_list
        if n not in (b"content-length", b"transfer-encoding")
    ]
    if chunked:
        header_list.append((b"transfer-encoding", b"chunked"))
    elif body:
        header_list.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1"), encoding="utf-8", errors="replace"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": header_list,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(
    app, scope: dict, body: bytes, pieces: int
) -> tuple[list[dict], BaseException | None]:
    """Drive one request through the bridge; return what it sent, and any error."""
    size = max(1, -(-len(body) // pieces))
    chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    done = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        if incoming:
            return incoming.pop(0)
        await done.wait()  # a real client stays until its answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    try:
        await asyncio.wait_for(app(scope, receive, send), 5 * UNIT)
    except asyncio.TimeoutError:
        raise
    except Exception as error:  # the server answers 500 for it
        return sent, error
    return sent, None


def check_answer(sent: list[dict], method: str = "GET") -> tuple[int, bytes]:
    """Assert that ``sent`` is one well-formed HTTP answer; return status and body."""
    assert sent, "nothing was sent"
    start, *rest = sent
    assert start["type"] == "http.response.start"
    status = start["status"]
    assert isinstance(status, int) and 100 <= status <= 599
    for name, value in start.get("headers", []):
        assert isinstance(name, bytes) and name and all(chr(c) in TOKEN for c in name)
        assert isinstance(value, bytes) and not set(value) & {0, 10, 13}
    assert rest and all(m["type"] == "http.response.body" for m in rest)
    assert not rest[-1].get("more_body", False)
    assert all(m.get("more_body", False) for m in rest[:-1])
    body = b"".join(m.get("body", b"") for m in rest)
    lengths = [v for n, v in start.get("headers", []) if n.lower() == b"content-length"]
    if lengths and method != "HEAD":  # HEAD: the length of the GET's body
        assert int(lengths[0]) == len(body)
    return status, body


def pep3333_app(environ, start_response):
    """Check the environ against PEP 3333 and echo what it found."""
    problems = []
    for key, value in environ.items():
        if not isinstance(key, str):
            problems.append(f"key {key!r} is not str")
        if isinstance(value, str):
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                problems.append(f"{key} is not a native (latin-1) string")
    for key in ("REQUEST_METHOD", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"):
        if not isinstance(environ.get(key), str) or not environ[key]:
            problems.append(f"{key} missing or empty")
    for key in ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING"):
        if not isinstance(environ.get(key), str):
            problems.append(f"{key} missing")
    if environ["SCRIPT_NAME"] and not environ["SCRIPT_NAME"].startswith("/"):
        problems.append("SCRIPT_NAME does not start with /")
    if environ["PATH_INFO"] and not environ["PATH_INFO"].startswith("/"):
        problems.append("PATH_INFO does not start with /")
    if "HTTP_CONTENT_TYPE" in environ or "HTTP_CONTENT_LENGTH" in environ:
        problems.append("Content-Type/Length given an HTTP_ prefix")
    if "CONTENT_LENGTH" in environ and not environ["CONTENT_LENGTH"].isdigit():
        problems.append("CONTENT_LENGTH is not a number")
    if environ["wsgi.version"] != (1, 0) or environ["wsgi.url_scheme"] not in (
        "http",
        "https",
    ):
        problems.append("wsgi.version or wsgi.url_scheme wrong")
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        if not isinstance(environ[key], bool):
            problems.append(f"{key} is not a bool")
    data = b""
    while chunk := environ["wsgi.input"].read(4096):
        data += chunk
    body = {
        "problems": problems,
        "path": base64.b64encode(environ["PATH_INFO"].encode("latin-1")).decode(),
        "query": base64.b64encode(environ["QUERY_STRING"].encode("latin-1")).decode(),
        "body": len(data),
        "method": environ["REQUEST_METHOD"],
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return iter([json.dumps(body).encode()])  # an iterator, so close() matters


def refusal(raw_path: bytes, header_list) -> bytes | None:
    """The 400 body the bridge owes this request (RFC 9112 section 3.2), or None."""
    hosts = [value for name, value in header_list if name == b"host"]
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        reason = "The request path is not UTF-8 once percent-decoded"
    else:
        if len(hosts) > 1:
            reason = "Request has more than one Host header"
        elif not hosts:
            reason = "An HTTP/1.1 request needs a Host header"
        elif hosts[0] in BAD_HOSTS:
            reason = (
                "The host of the request (its Host header, or its target's "
                "authority) is not a host name or address[:port]"
            )
        else:
            return None
    return f"Bad Request: {reason}.".encode()


@pytest.fixture(scope="module")
def fuzz_loop():
    """One real loop for every generated example."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def test_bridge_fuzzed_requests_keep_pep_3333(fuzz_loop):
    """Random requests get well-formed answers, and the environ follows PEP 3333."""
    app = make_asgi_app(pep3333_app)

    @FUZZ
    @given(methods, raw_paths, queries, headers, bodies)
    def check(method, raw_path, query, header_list, body_parts):
        body, pieces, chunked = body_parts
        scope = scope_for(method, raw_path, query, header_list, body, chunked)
        sent, error = fuzz_loop.run_until_complete(call(app, scope, body, pieces))
        assert error is None, repr(error)
        status, answer = check_answer(sent)
        refused = refusal(raw_path, header_list)
        if refused is not None:
            assert (status, answer) == (400, refused)
            return
        assert status == 200
        seen = json.loads(answer)
        assert seen["problems"] == []
        assert base64.b64decode(seen["path"]) == unquote_to_bytes(raw_path)
        assert base64.b64decode(seen["query"]) == query
        assert seen["body"] == len(body)
        assert seen["method"] == method

    check()


def test_bridge_fuzzed_requests_through_pyramid(fuzz_loop):
    """Through Pyramid, random requests get well-formed answers (bad paths: 400)."""

    async def echo(request):
        await asyncio.sleep(0)
        return {"params": len(request.params), "body": len(request.body)}

    def setup(config):
        config.add_route("any", "/*rest")
        config.add_view(echo, route_name="any", renderer="json")

    app = make_asgi_app(make_app(setup))

    @FUZZ
    @given(methods, raw_paths, queries, headers, bodies)
    def check(method, raw_path, query, header_list, body_parts):
        body, pieces, chunked = body_parts
        scope = scope_for(method, raw_path, query, header_list, body, chunked)
        sent, error = fuzz_loop.run_until_complete(call(app, scope, body, pieces))
        assert error is None, repr(error)
        status, answer = check_answer(sent, method)
        refused = refusal(raw_path, header_list)
        if refused is not None:
            assert (status, answer) == (400, refused)
            return
        if status == 500:
            # webob cannot decode the query or form as UTF-8: the bridge
            # answers 500 (as any server does for an error).
            with pytest.raises(UnicodeDecodeError):
                for text in (unquote_to_bytes(query), body):
                    text.decode("utf-8")
            return
        assert status in (200, 404), answer
        if status == 200 and method != "HEAD":
            assert json.loads(answer)["body"] == len(body)

    check()


# -- under the worker ------------------------------------------------------------


@pytest.fixture(scope="module", params=["gunicorn", "granian"])
def server(request):
    """The faults app (64 KiB websocket messages, 1 MiB bodies), on each server."""
    for name in ("gunicorn", "granian", "httpx", "websockets"):
        require_module(name)
    port = free_port()
    if request.param == "granian":
        command = granian_command("tests.harness.faults_app:rsgi", port, "--factory")
    else:
        command = gunicorn_command(
            "--bind", f"127.0.0.1:{port}", "tests.harness.faults_app:main()"
        )
    with running(command, port) as process:
        process.kind = request.param
        yield process


def hello(port: int) -> bytes:
    """The worker still answers."""
    return exchange(
        port, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.server
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /hello?" + b"q" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (
            b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 10_000 + b"\r\n\r\n",
            b"431",
        ),
        (
            b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"v" * 2**20 + b"\r\n\r\n",
            b"431",
        ),
        (
            b"GET /hello HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: v\r\n" % i for i in range(200))
            + b"\r\n",
            b"431",
        ),
        (
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
            b"413",
        ),
    ],
    ids=["request-line", "header-field", "megabyte-header", "too-many-headers", "body"],
)
def test_oversized_input_is_refused_and_serving_goes_on(server, request_bytes, status):
    """Oversized lines get 414, headers 431 (gunicorn's parser), bodies 413.

    granian's parser (hyper) answers 431 past its buffer or 100 fields, and
    passes a long line or field on, which the adapter's head limits (those
    of gunicorn, by default) answer 400.
    """
    answer = exchange(server.port, request_bytes)
    if server.kind == "granian" and len(request_bytes) < 2**20 and status != b"413":
        status = b"431" if request_bytes.count(b"\r\n") > 100 else b"400"
    assert answer.split(b" ", 2)[1] == status, answer[:200]
    assert hello(server.port).endswith(b"Hello coroutine")


@pytest.mark.server
def test_malformed_and_oversized_frames_close_only_their_connection(server):
    """A bad frame closes its websocket (1002), a huge one (1009); others go on."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    if server.kind == "granian":
        # Websockets are not served over RSGI yet: refused before any frame.
        with pytest.raises(InvalidStatus, match="403"):
            asyncio.run(asyncio.wait_for(connect(server.ws_url + "/ws/echo"), 20))
        return
    from websockets.exceptions import ConnectionClosed

    def raw_bad_frame() -> bytes:
        key = base64.b64encode(os.urandom(16))
        answer = b""
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(10 * UNIT)
            sock.sendall(
                b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 101")
            answer = answer.partition(b"\r\n\r\n")[2]
            # An unmasked text frame with reserved bits set: twice a protocol error.
            sock.sendall(b"\xf1\x02hi")
            try:
                while chunk := sock.recv(4096):
                    answer += chunk
            except ConnectionResetError:
                pass
        return answer

    async def main() -> tuple[int | None, bytes, str]:
        async with connect(server.ws_url + "/ws/echo") as bystander:
            await bystander.send("before")
            assert await bystander.recv() == "before"
            closing = await asyncio.to_thread(raw_bad_frame)
            async with connect(server.ws_url + "/ws/echo", max_size=2**20) as big:
                await big.send(b"x" * 70_000)
                with pytest.raises(ConnectionClosed):
                    await big.recv()
                code = big.close_code
            await bystander.send("after")
            return code, closing, await bystander.recv()

    code, closing, after = asyncio.run(asyncio.wait_for(main(), 30 * UNIT))
    assert code == 1009
    assert closing[:1] == b"\x88" and int.from_bytes(closing[2:4], "big") == 1002
    assert after == "after"


@pytest.mark.server
def test_slowloris_blocks_nobody(server):
    """A head trickled a byte every 0.1 s holds one connection and blocks nobody.

    gunicorn 27's ASGI worker sets no deadline on a connection's first
    request head (docs/security.rst): the connection is held, cheaply.
    """
    stop = threading.Event()

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            for byte in b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 1000:
                if stop.wait(0.1):
                    return
                sock.sendall(bytes([byte]))

    slow = threading.Thread(target=trickle)
    slow.start()
    served = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < 3 * UNIT:
            assert hello(server.port).endswith(b"Hello coroutine")
            served += 1
            time.sleep(0.02)  # the input: the others' requests, paced
    finally:
        stop.set()
        slow.join(10 * UNIT)
    assert served >= 20
