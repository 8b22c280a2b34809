"""The RSGI adapter driven in process, on a real loop, with a stand-in protocol.

What a real granian rarely or never does on demand: a transport that fails
or never takes a piece, a body iterator that raises, a file with no path,
a head that could split the response.  ``tests/test_rsgi.py`` runs the rest
under granian itself.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
from typing import Any

import pytest

from aiopyramid.asgi import make_asgi_app
from aiopyramid.rsgi import make_rsgi_app


class Headers:
    """RSGI's header mapping, as much of it as the adapter reads."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)


class Scope:
    """An RSGI ``http`` scope."""

    proto = "http"
    http_version = "1.1"
    rsgi_version = "1.6"
    scheme = "http"
    server = "127.0.0.1:8000"
    client = "127.0.0.1:5000"
    authority = None

    def __init__(self, method="GET", path="/x", query="", headers=()) -> None:
        self.method = method
        self.path = path
        self.query_string = query
        self.headers = Headers([("host", "example.org"), *headers])


class Transport:
    """``response_stream``'s transport: takes pieces, or fails, or never does."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.pieces: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        if self.mode == "fail":
            raise RuntimeError("connection closed")
        if self.mode == "stuck":
            await asyncio.Event().wait()
        self.pieces.append(data)


class Protocol:
    """An RSGI HTTP protocol recording what the adapter answered."""

    def __init__(self, chunks: list[Any] = (), transport: str = "ok") -> None:
        self.chunks = list(chunks)
        self.answer: tuple[Any, ...] | None = None
        self.transport = Transport(transport)

    def __aiter__(self):
        return self._body()

    async def _body(self):
        for chunk in self.chunks:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    async def client_disconnect(self) -> None:
        await asyncio.Event().wait()

    def response_bytes(self, status, headers, body) -> None:
        self.answer = ("bytes", status, dict(headers), body)

    def response_stream(self, status, headers) -> Transport:
        self.answer = ("stream", status, dict(headers))
        return self.transport

    def response_file(self, status, headers, path) -> None:
        self.answer = ("file", status, dict(headers), path)


def serve(app, scope, protocol, **options) -> list[tuple]:
    """Serve one request with ``make_rsgi_app(app, **options)``; the access lines."""
    lines: list[tuple] = []
    served = make_rsgi_app(
        app, access_logger=lambda *line: lines.append(line), **options
    )
    asyncio.run(asyncio.wait_for(served.__rsgi__(scope, protocol), 10))
    return lines


def text_app(environ, start_response):
    """Say what the request was."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['PATH_INFO']}?{environ['QUERY_STRING']}".encode()]


def test_a_bad_head_gets_400_and_an_access_line():
    """Two Hosts: 400 before the application runs, with its access line."""
    protocol = Protocol()
    lines = serve(text_app, Scope(headers=[("host", "evil.example")]), protocol)
    assert protocol.answer[1] == 400
    assert b"more than one Host" in protocol.answer[3]
    environ, status = lines[0][:2]
    assert status == "400 Bad Request"
    assert environ["RAW_URI"] == "/x" and environ["REMOTE_ADDR"] == "127.0.0.1"


def test_a_whole_body_is_one_call():
    """A list body goes out in one response_bytes, with its head."""
    protocol = Protocol()
    serve(text_app, Scope(path="/a", query="b=1"), protocol)
    assert protocol.answer == ("bytes", 200, {"Content-Type": "text/plain"}, b"/a?b=1")


def test_a_body_iterator_that_raises_is_a_client_gone():
    """granian's ProtocolClosed while the body is read: nothing runs, 499."""
    protocol = Protocol([b"abc", RuntimeError("closed")])
    scope = Scope("POST", headers=[("content-length", "10")])
    lines = serve(text_app, scope, protocol)
    assert protocol.answer is None
    assert lines[0][1] == "499 Client Closed Request"


def test_a_body_declared_too_large_is_refused_unread():
    """A Content-Length over the limit: 413, and granian's body never opened."""

    class Unread(Protocol):
        def __aiter__(self):
            raise AssertionError("the body was opened")

    protocol = Unread()
    scope = Scope("POST", headers=[("content-length", "11")])
    lines = serve(text_app, scope, protocol, max_body_size=10)
    assert protocol.answer[:2] == ("bytes", 413)
    assert lines[0][1] == "413 Content Too Large"
    assert lines[0][0]["wsgi.input"].read() == b""


def test_a_file_without_a_path_is_streamed():
    """wsgi.file_wrapper around a file with no path: sent as chunks."""

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 20000), 8192)

    protocol = Protocol()
    serve(app, Scope(), protocol)
    assert protocol.answer[0] == "stream"
    assert b"".join(protocol.transport.pieces) == b"x" * 20000


def test_a_file_with_a_path_goes_to_response_file(tmp_path):
    """wsgi.file_wrapper around a file read from its start: response_file."""
    path = tmp_path / "f.txt"
    path.write_bytes(b"hello")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return environ["wsgi.file_wrapper"](path.open("rb"))

    protocol = Protocol()
    lines = serve(app, Scope(), protocol)
    assert protocol.answer == ("file", 200, {"Content-Length": "5"}, str(path))
    assert lines[0][1] == "200 OK"


def test_a_transport_that_fails_is_a_client_gone(caplog):
    """send_bytes raising (the client left): no failure record, no 500."""

    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"one"
        yield b"two"

    protocol = Protocol(transport="fail")
    with caplog.at_level(logging.DEBUG, logger="aiopyramid.rsgi"):
        serve(app, Scope(), protocol)
    assert protocol.answer[:2] == ("stream", 200)
    assert "Response not sent" in caplog.text
    assert "failed in" not in caplog.text


def test_a_client_that_takes_nothing_is_ended_at_the_send_deadline(caplog):
    """A stream whose transport never takes a piece: cancelled after send_timeout."""
    ended: list[str] = []

    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            yield b"first"
            yield b"never sent"
        finally:
            ended.append("closed")

    protocol = Protocol(transport="stuck")
    with caplog.at_level(logging.INFO, logger="aiopyramid.asgi"):
        lines = serve(app, Scope(), protocol, send_timeout=0.2)
    assert "aiopyramid.send_timeout" in caplog.text
    assert ended == ["closed"]
    assert lines[0][1] == "200 OK"  # the head went out; the body did not


def test_a_head_that_could_split_the_response_is_a_500_stream():
    """A CR in a streamed response's header: a logged 500 instead."""

    def app(environ, start_response):
        start_response("200 OK", [("X-Evil", "a\r\nb")])
        yield b"one"
        yield b"two"

    protocol = Protocol()
    serve(app, Scope(), protocol)
    assert protocol.answer[1] == 500
    assert protocol.transport.pieces == []


def test_an_application_that_fails_after_its_head_is_cut_off():
    """Too late for a 500: the error goes up to granian, which ends the stream."""

    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"one"
        raise ValueError("late")

    protocol = Protocol()
    with pytest.raises(ValueError, match="late"):
        serve(app, Scope(), protocol)
    assert protocol.transport.pieces == [b"one"]


def test_loop_end_shuts_down_the_plain_view_pool():
    """__rsgi_del__ shuts the pool of aiopyramid.executor.max_workers down."""
    from pyramid.config import Configurator

    from aiopyramid.config import IExecutor

    config = Configurator(settings={"aiopyramid.executor.max_workers": "2"})
    config.include("aiopyramid")
    served = make_rsgi_app(config.make_wsgi_app())
    executor = served.bridge.registry.queryUtility(IExecutor)
    loop = asyncio.new_event_loop()
    try:
        served.__rsgi_init__(loop)
        served.__rsgi_del__(loop)
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="shutdown"):
        executor.submit(print)


def test_without_an_access_logger_the_request_is_served_and_counted():
    """No logger: the answer is the same, and the request count is back to 0."""
    protocol = Protocol()
    served = make_rsgi_app(text_app)
    asyncio.run(asyncio.wait_for(served.__rsgi__(Scope(query="a=1"), protocol), 10))
    assert protocol.answer == ("bytes", 200, {"Content-Type": "text/plain"}, b"/x?a=1")
    assert served.bridge.active == 0


def test_a_list_after_write_ends_the_stream():
    """A body begun with write() and returned as a list goes out as one stream."""

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])(b"one ")
        return [b"two"]

    protocol = Protocol()
    lines = serve(app, Scope(), protocol)
    assert protocol.answer[:2] == ("stream", 200)
    assert protocol.transport.pieces == [b"one ", b"two"]
    assert lines[0][3] == 7


def test_the_address_cache_is_bounded(monkeypatch):
    """Past 1,024 addresses the cache starts again: clients choose their ports."""
    from aiopyramid import _rsgi_http

    monkeypatch.setattr(_rsgi_http, "_addresses", {})
    for port in range(1030):
        assert _rsgi_http._address(f"10.0.0.1:{port}") == ("10.0.0.1", port)
    assert len(_rsgi_http._addresses) < 1024
    assert _rsgi_http._address("[::1]:80") == ("::1", 80)
    assert _rsgi_http._address("unix") is None


def test_make_rsgi_app_takes_the_options_of_make_asgi_app():
    """make_rsgi_app has every option of make_asgi_app, as it is, and root_path."""
    asgi = list(inspect.signature(make_asgi_app).parameters.values())
    rsgi = list(inspect.signature(make_rsgi_app).parameters.values())
    assert rsgi[:-1] == asgi
    assert (rsgi[-1].name, rsgi[-1].kind) == (
        "root_path",
        inspect.Parameter.KEYWORD_ONLY,
    )
