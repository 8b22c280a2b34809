"""What the ASGI bridge refuses, driven on a real loop with ASGI messages."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aiopyramid import asgi
from aiopyramid._environ import BadRequest, environ_of_scope


def scope(headers=(), client=("127.0.0.1", 5000), kind="http", **extra) -> dict:
    """An http (or websocket) scope as a server builds it."""
    return {
        "type": kind,
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"q=1",
        "root_path": "",
        "headers": [(b"host", b"example.org"), *headers],
        "client": client,
        "server": ("127.0.0.1", 8000),
        **extra,
    }


def test_underscore_names_follow_header_map():
    """drop (default) leaves them out, refuse raises, dangerous keeps them."""
    headers = [(b"x_forwarded_for", b"6.6.6.6"), (b"content_type", b"text/evil")]
    environ = environ_of_scope(scope(headers), None)
    assert "HTTP_X_FORWARDED_FOR" not in environ
    assert "HTTP_CONTENT_TYPE" not in environ and "CONTENT_TYPE" not in environ
    with pytest.raises(BadRequest, match="'x_forwarded_for' contains '_'"):
        environ_of_scope(scope(headers), None, header_map="refuse")
    environ = environ_of_scope(scope(headers), None, header_map="dangerous")
    assert environ["HTTP_X_FORWARDED_FOR"] == "6.6.6.6"


def test_two_hosts_and_addresses():
    """Two Hosts raise; REMOTE_ADDR only from an IP address."""
    with pytest.raises(BadRequest, match="more than one Host"):
        environ_of_scope(scope([(b"host", b"evil.example")]), None)
    assert environ_of_scope(scope(client=("::1", 1)), None)["REMOTE_ADDR"] == "::1"
    for junk in ("<script>", "unknown", ""):
        environ = environ_of_scope(scope(client=(junk, 1)), None)
        assert "REMOTE_ADDR" not in environ and "REMOTE_PORT" not in environ


async def drive(app, the_scope, incoming=(), hold=False, stalled=None):
    """Run one request; return what the bridge sent.

    With ``hold``, the client stalls once ``incoming`` is sent, setting the
    event ``stalled`` (if given) when the bridge waits for more.
    """
    queue = list(incoming)
    sent: list[dict] = []
    done = asyncio.Event()

    async def receive():
        if queue:
            return queue.pop(0)
        if hold:  # a client that stalls, sending nothing more
            if stalled is not None:
                stalled.set()
            await asyncio.sleep(3600)
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"].endswith("body") and not message.get("more_body"):
            done.set()

    await app(the_scope, receive, send)
    return sent


def status(sent) -> int:
    """The status the bridge answered."""
    return sent[0]["status"]


def hello(environ, start_response):
    """A plain WSGI application."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def split_header(environ, start_response):
    """An application echoing a value with a line break into a header."""
    start_response("200 OK", [("X-Echo", "a\r\nSet-Cookie: evil=1")])
    return [b"split"]


def test_refusals_get_an_access_line_each(caplog):
    """400, 408, 413, 500 (split header), 503 and 499 are answered and logged."""
    caplog.set_level(logging.INFO, logger="aiopyramid.access")
    app = asgi.make_asgi_app(
        hello,
        access_logger=asgi.log_access,
        max_body_size=10,
        body_timeout=0.2,
        max_concurrency=1,
    )
    post = {"method": "POST"}

    async def main():
        two_hosts = await drive(app, scope([(b"host", b"b")]))
        big = await drive(app, scope([(b"content-length", b"11")], **post))
        chunked = [{"type": "http.request", "body": b"x" * 11, "more_body": True}]
        big_chunked = await drive(
            app, scope([(b"transfer-encoding", b"chunked")], **post), chunked
        )
        part = [{"type": "http.request", "body": b"xx", "more_body": True}]
        stalled = await drive(
            app, scope([(b"content-length", b"5")], **post), part, hold=True
        )
        split = await drive(asgi.make_asgi_app(split_header), scope())
        # One request at a time: a second one while the first waits is 503.
        waiting = asyncio.Event()
        first = asyncio.ensure_future(
            drive(
                app,
                scope([(b"content-length", b"5")], **post),
                part,
                hold=True,
                stalled=waiting,
            )
        )
        await waiting.wait()
        busy = await drive(app, scope())
        await first
        waiting.clear()
        left = asyncio.ensure_future(
            drive(
                app,
                scope([(b"content-length", b"5")], **post),
                part,
                hold=True,
                stalled=waiting,
            )
        )
        await waiting.wait()
        left.cancel()
        with pytest.raises(asyncio.CancelledError):
            await left
        return two_hosts, big, big_chunked, stalled, split, busy

    results = asyncio.run(main())
    assert [status(sent) for sent in results] == [400, 413, 413, 408, 500, 503]
    assert b"evil" not in b"".join(m.get("body", b"") for m in results[4])
    # RFC 9110 section 10.2.3: a 503 says when to come back.
    assert (b"retry-after", b"1") in [
        (name.lower(), value) for name, value in results[5][0]["headers"]
    ]
    lines = [r.getMessage() for r in caplog.records if r.name == "aiopyramid.access"]
    codes = [line.split('" ', 1)[1].split()[0] for line in lines]
    assert codes == ["400", "413", "413", "408", "503", "408", "499"]
    assert lines[0].startswith('127.0.0.1 "GET /x?q=1 HTTP/1.1" 400 ')
    assert any("containing CR, LF or NUL" in r.getMessage() for r in caplog.records)


def test_errors_are_logged_as_500(caplog):
    """An application that raises gets a 500 answer, its error line and access line."""
    caplog.set_level(logging.INFO, logger="aiopyramid")

    def broken(environ, start_response):
        raise RuntimeError("broken")

    app = asgi.make_asgi_app(broken, access_logger=asgi.log_access)
    asyncio.run(drive(app, scope()))
    body = b"Internal Server Error."
    assert f'"GET /x?q=1 HTTP/1.1" 500 {len(body)}' in caplog.text
    assert "failed in the application, outside any view: RuntimeError" in caplog.text


def test_websockets_past_max_websockets_are_refused():
    """A handshake past max_websockets is closed before it is accepted."""
    app = asgi.make_asgi_app(hello, max_websockets=1)
    app.websockets = 1  # one websocket being served

    async def main():
        sent = []

        async def receive():
            return {"type": "websocket.connect"}

        async def send(message):
            sent.append(message)

        await app(scope(kind="websocket"), receive, send)
        return sent

    assert asyncio.run(main()) == [
        {"type": "websocket.close", "code": 1008, "reason": ""}
    ]


def test_access_log_setting():
    """aiopyramid.access_log = true makes log_access the access logger."""

    class App:
        class registry:
            settings = {"aiopyramid.access_log": "true"}

        def __call__(self, environ, start_response):
            return []

    assert asgi.make_asgi_app(App()).access_logger is asgi.log_access
    App.registry.settings = {}
    assert asgi.make_asgi_app(App()).access_logger is None
