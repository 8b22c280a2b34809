"""Request targets and hosts as RFC 9112 says, on every server the bridge runs.

The same requests go to the worker's direct HTTP/1 path, to the worker over
HTTP/2 (TLS, through the ASGI bridge), to uvicorn serving
:func:`aiopyramid.asgi.make_asgi_app` with each of its HTTP/1 parsers, and
to granian serving :func:`aiopyramid.rsgi.make_rsgi_app`.  The
rules live in the one environ builder (``aiopyramid/_environ.py``): an
absolute-form target names the host, an HTTP/1.1 request needs a ``Host``,
a host must be RFC 3986's ``host[:port]``, and a path must be UTF-8 once
percent-decoded; each refusal is a ``400``, never a ``500`` with a
traceback.  Answers are read with ``h11`` and ``h2``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.h2_client import h2_answer
from tests.harness.raw_http import Answer, answer_to
from tests.harness.servers import (
    free_port,
    granian_command,
    gunicorn_command,
    import_required,
    python_module,
    require_module,
    running,
)
from tests.harness.tls import self_signed_certificate

pytestmark = pytest.mark.server
import_required("h11")

KINDS = ["worker", "worker-h2", "uvicorn-httptools", "uvicorn-h11", "granian"]


@contextlib.contextmanager
def serve(kind: str, folder: Path) -> Iterator[Any]:
    """The attack app's /env under ``kind``."""
    port = free_port()
    if kind.startswith("worker"):
        require_module("gunicorn")
        args = ["--bind", f"127.0.0.1:{port}"]
        if kind == "worker-h2":
            require_module("h2")
            cert, key = self_signed_certificate(folder)
            args += ["--certfile", str(cert), "--keyfile", str(key)]
            args += ["--http-protocols", "h2,h1"]
            folder.joinpath("ca").write_text(str(cert))
        command = gunicorn_command(*args, "tests.apps.attacks:app")
    elif kind == "granian":
        require_module("granian")
        command = granian_command("tests.apps.attacks:rsgi", port)
    else:
        require_module("uvicorn")
        parser = kind.partition("-")[2]
        require_module(parser)
        command = python_module(
            "uvicorn", "--port", str(port), "--http", parser, "tests.apps.attacks:asgi"
        )
    with running(command, port) as process:
        process.kind = kind
        process.folder = folder
        yield process


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Any]:
    """Each server in turn."""
    with serve(request.param, tmp_path_factory.mktemp(request.param)) as process:
        yield process


def ask(server: Any, target: str, *headers: str) -> Answer:
    """GET ``target`` with exactly ``headers`` (no Host unless among them)."""
    if server.kind != "worker-h2":
        lines = [f"GET {target} HTTP/1.1", *headers, "Connection: close"]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return answer_to(server.port, data)
    fields = [
        (name.lower().encode(), value.encode("latin-1"))
        for name, _, value in (header.partition(": ") for header in headers)
    ]
    sent = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", target.encode())]
    # HTTP/2 names the host in :authority (RFC 9113 section 8.3.1).
    sent += [(b":authority", value) for name, value in fields if name == b"host"]
    sent += [(name, value) for name, value in fields if name != b"host"]
    cafile = Path(server.folder.joinpath("ca").read_text())
    return h2_answer(server.port, sent, cafile)


def test_an_absolute_form_target_names_the_host(server: Any) -> None:
    """GET http://other.host/env with Host good.example (HTTP/1): other.host's /env."""
    answer = ask(server, "http://other.host/env?q=1", "Host: good.example")
    assert answer.status == 200, answer
    seen = json.loads(answer.body)
    assert seen["PATH_INFO"] == "/env"
    if server.kind == "worker-h2":
        # HTTP/2 names the host in :authority, which wins (RFC 9113 8.3.1);
        # gunicorn hands the bridge the target's path alone.
        assert seen["HTTP_HOST"] == "good.example"
        assert seen["url"] == "https://good.example/env?q=1"
    elif server.kind == "uvicorn-httptools":
        # uvicorn keeps only the path of the target (httptools.parse_url):
        # the authority never reaches the bridge (docs/security.rst).
        assert seen["HTTP_HOST"] == "good.example"
        assert seen["url"] == "http://good.example/env?q=1"
    else:
        assert seen["HTTP_HOST"] == "other.host"
        assert seen["url"] == "http://other.host/env?q=1"


def test_an_http_1_1_request_without_host_is_refused(server: Any) -> None:
    """No Host in HTTP/1.1: 400 (RFC 9112 section 3.2), from the bridge."""
    if server.kind == "worker-h2":
        # gunicorn refuses a request without :authority (PROTOCOL_ERROR).
        with pytest.raises(AssertionError, match="ConnectionTerminated"):
            ask(server, "/env")
        return
    answer = ask(server, "/env")
    if server.kind == "uvicorn-h11":
        # h11 refuses it itself, before the bridge.
        assert answer.status == 400, answer
        return
    assert answer.status == 400, answer
    assert answer.body == b"Bad Request: An HTTP/1.1 request needs a Host header."


@pytest.mark.parametrize(
    "host",
    ["good.example/evil", "evil@good.example", "good example", "[::zz]", "a\x7fb"],
)
def test_a_malformed_host_is_refused(server: Any, host: str) -> None:
    """A Host that is not RFC 3986's host[:port] gets 400, never the application."""
    answer = ask(server, "/env", f"Host: {host}")
    assert answer.status == 400, answer
    assert b'"HTTP_HOST"' not in answer.body


@pytest.mark.parametrize("path", ["/%ff", "/%c0%af", "/env/%e9t%e9"])
def test_a_path_that_is_not_utf8_is_refused_not_failed(server: Any, path: str) -> None:
    """A path Pyramid cannot decode is the client's error: 400, no traceback.

    granian decodes the path itself before aiopyramid sees it, replacing
    bytes that are not UTF-8 with U+FFFD: the path no route matches is a
    404, never a 500 (docs/security.rst).
    """
    answer = ask(server, path, "Host: good.example")
    if server.kind == "granian":
        assert answer.status == 404, answer
        assert "Traceback" not in server.log()
        return
    assert answer.status == 400, answer
    assert (
        answer.body
        == b"Bad Request: The request path is not UTF-8 once percent-decoded."
    )
    assert "Traceback" not in server.log()
    assert ask(server, "/env/%C3%A9t%C3%A9", "Host: good.example").status == 404
