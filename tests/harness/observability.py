"""What the observability tests need: a Sentry envelope sink and a span checker.

:class:`EnvelopeSink` is a tiny HTTP server on a free loopback port that
collects what sentry-sdk POSTs (gzipped or not) and splits it into items.
:func:`span_mismatches` is the checker of the tests' property: every span
carries its own request's trace id and reaches its own request's server
span through its parents.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit


class EnvelopeSink:
    """Sentry's ingestion, as far as the tests need it: items, kept in memory."""

    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], Any]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                sink.add(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass  # quiet: the test's output is about the server

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.dsn = f"http://public@127.0.0.1:{self.port}/1"

    def add(self, envelope: bytes) -> None:
        """Split one envelope into its items (header, payload)."""
        _, _, rest = envelope.partition(b"\n")
        items = []
        while rest.strip():
            line, _, rest = rest.partition(b"\n")
            header = json.loads(line)
            if "length" in header:
                payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
            else:
                payload, _, rest = rest.partition(b"\n")
            try:
                items.append((header, json.loads(payload)))
            except ValueError:
                items.append((header, payload))
        with self.lock:
            self.items.extend(items)

    def of_type(self, kind: str) -> list[Any]:
        """Payloads of the items of ``kind`` ("event", "transaction")."""
        with self.lock:
            return [payload for header, payload in self.items if header["type"] == kind]


@contextmanager
def envelope_sink() -> Iterator[EnvelopeSink]:
    """An :class:`EnvelopeSink` serving on a thread for the duration of a block."""
    sink = EnvelopeSink()
    thread = threading.Thread(target=sink.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        sink.server.shutdown()
        sink.server.server_close()


def request_i(span: dict[str, Any]) -> str | None:
    """The ``i`` of the request a server span serves, from its URL's query."""
    attributes = span["attributes"]
    target = attributes.get("http.target") or attributes.get("url.query") or ""
    query = urlsplit(target).query if "?" in target else target
    values = parse_qs(query).get("i")
    return values[0] if values else None


def span_mismatches(spans: list[dict[str, Any]]) -> list[str]:
    """What breaks the property, one line per span; empty if nothing does.

    A span tagged with a request's ``i`` must reach, through its parents
    within its own trace, the server span of the request with that ``i``.
    """
    by_id = {span["id"]: span for span in spans}
    problems = []
    for span in spans:
        i = span["attributes"].get("i")
        if i is None or span["kind"] == "SERVER":
            continue
        node = span
        while node is not None and node["kind"] != "SERVER":
            parent = by_id.get(node["parent"])
            if parent is not None and parent["trace"] != node["trace"]:
                problems.append(f"{span['name']} (i={i}): parent in another trace")
                break
            node = parent
        else:
            if node is None:
                problems.append(f"{span['name']} (i={i}): no server span above it")
            elif request_i(node) != i:
                problems.append(
                    f"{span['name']} (i={i}): under request {request_i(node)}'s span"
                )
    return problems
