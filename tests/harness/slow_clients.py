"""Clients that read nothing, and the worker they are aimed at.

:func:`greedy_worker` runs ``AsyncGunicornWorker`` on ``tests.apps.greedy``
(optionally over TLS with HTTP/2) with the application settings a test
gives; :func:`worker_rss` reads its memory from ``/proc``.  The clients are
plain sockets (:func:`unread_http1`), the ``h2`` library on TLS sockets
(:class:`UnreadH2`), ``websockets``' sans-I/O client on plain sockets
(:class:`WebsocketClient`), and :func:`tcp_state` says, from the client's side,
whether the server has ended a connection that its client never reads.
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.harness.servers import (
    UNIT,
    ServerProcess,
    free_port,
    gunicorn_command,
    import_required,
    running,
)
from tests.harness.tls import self_signed_certificate

__all__ = [
    "ESTABLISHED",
    "GreedyWorker",
    "UnreadH2",
    "WebsocketClient",
    "greedy_worker",
    "raise_fd_limit",
    "tcp_state",
    "unread_http1",
    "worker_rss",
]

#: Linux's TCP state of an open connection (``tcpi_state`` of ``TCP_INFO``).
ESTABLISHED = 1
MB = 2**20


def worker_rss(pid: int) -> int:
    """Resident memory of process ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) * 1024


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (:data:`ESTABLISHED` while open)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return int(struct.unpack("B", info[:1])[0])


class GreedyWorker:
    """The running worker: its URL, its process id and a client to ask it."""

    def __init__(self, process: ServerProcess, url: str, trust: Any) -> None:
        self.process = process
        self.port = process.port
        self.url = url
        #: The certificate to trust (``True`` without TLS).
        self.trust = trust
        self.client = httpx.Client(verify=trust, timeout=10 * UNIT)
        self.pid = int(self.get("/pid").text)

    def get(self, path: str) -> httpx.Response:
        """GET ``path``, which must be answered 200 (a 503 fails the test)."""
        answer = self.client.get(self.url + path)
        assert answer.status_code == 200, f"{path}: {answer.status_code}"
        return answer

    def busy(self) -> dict[str, int]:
        """How many ``/stream`` bodies and ``/ws/flood`` views are under way."""
        return json.loads(self.get("/busy").text)  # type: ignore[no-any-return]

    def rss(self) -> int:
        """The worker's resident memory, in bytes."""
        return worker_rss(self.pid)


@contextlib.contextmanager
def greedy_worker(
    directory: Path,
    settings: dict[str, str] | None = None,
    *args: str,
    tls: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[GreedyWorker]:
    """The worker serving ``tests.apps.greedy`` with these application settings.

    ``tls`` serves HTTPS with HTTP/2 (``--http-protocols h2,h1``); ``args``
    are more of gunicorn's options.
    """
    port = free_port()
    options = ["--bind", f"127.0.0.1:{port}", *args]
    trust: Any = True
    if tls:
        cert, key = self_signed_certificate(directory)
        options += ["--certfile", str(cert), "--keyfile", str(key)]
        options += ["--http-protocols", "h2,h1"]
        trust = ssl.create_default_context(cafile=str(cert))
        trust.cert_path = str(cert)
    environment = dict(env or {})
    environment["AIOPYRAMID_TEST_SETTINGS"] = ";".join(
        f"{name}={value}" for name, value in (settings or {}).items()
    )
    command = gunicorn_command(*options, "tests.apps.greedy:app")
    with running(command, port, env=environment) as process:
        scheme = "https" if tls else "http"
        worker = GreedyWorker(process, f"{scheme}://127.0.0.1:{port}", trust)
        try:
            yield worker
        finally:
            worker.client.close()


def unread_http1(port: int, path: str) -> socket.socket:
    """A connection that asks for ``path`` and never reads the answer."""
    sock = socket.create_connection(("127.0.0.1", port), 10 * UNIT)
    # A small receive buffer: the client's system takes little on its behalf.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


class UnreadH2:
    """An HTTP/2 connection over TLS that opens streams and never reads.

    It announces the largest windows HTTP/2 allows (``INITIAL_WINDOW_SIZE``
    2**31 - 1 and a connection ``WINDOW_UPDATE`` to match), so that only the
    transport, not flow control, can hold the server back; ``small_buffer``
    keeps its system's receive buffer small too (reading is slow then).
    """

    def __init__(self, worker: GreedyWorker, *, small_buffer: bool = True) -> None:
        h2 = import_required("h2.connection")
        config = import_required("h2.config")
        settings = import_required("h2.settings")
        context = ssl.create_default_context(cafile=worker.trust.cert_path)
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", worker.port), 10 * UNIT)
        if small_buffer:  # the client's system takes little on its behalf
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.h2 = h2.H2Connection(config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        window = 2**31 - 1
        self.h2.update_settings({settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.h2.increment_flow_control_window(window - 65535)
        self.flush()

    def request(self, path: str) -> int:
        """Open a stream asking for ``path``; its id."""
        stream = int(self.h2.get_next_available_stream_id())
        headers = [
            (":method", "GET"),
            (":path", path),
            (":scheme", "https"),
            (":authority", "127.0.0.1"),
        ]
        self.h2.send_headers(stream, headers, end_stream=True)
        return stream

    def flush(self) -> None:
        """Send what the ``h2`` connection has to send."""
        self.sock.sendall(self.h2.data_to_send())

    def read_events(self, seconds: float) -> list[Any]:
        """Read (at last) for ``seconds``: the ``h2`` events that came."""
        events: list[Any] = []
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + seconds * UNIT
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            if not data:
                break
            for event in self.h2.receive_data(data):
                events.append(event)
                size = getattr(event, "flow_controlled_length", 0)
                if size:
                    self.h2.acknowledge_received_data(size, event.stream_id)
            self.flush()
        return events

    def close(self) -> None:
        """Close the socket without a word."""
        with contextlib.suppress(OSError):
            self.sock.close()


def raise_fd_limit(needed: int) -> None:
    """Let this process (and the servers it starts) open ``needed`` descriptors.

    As ``bench/wrk.py`` does: the soft limit goes up to the hard one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))


class WebsocketClient:
    """A websocket client on a plain socket, framed by ``websockets``' sans-I/O client.

    ``deflate`` offers permessage-deflate (without context takeover on the
    client's side, so that one compressed message may be sent many times:
    :meth:`frame` builds it once).
    """

    def __init__(self, port: int, path: str, *, deflate: bool = False) -> None:
        client = import_required("websockets.client")
        uri = import_required("websockets.uri")
        permessage_deflate = import_required("websockets.extensions.permessage_deflate")
        extensions = None
        if deflate:
            extensions = [
                permessage_deflate.ClientPerMessageDeflateFactory(
                    client_no_context_takeover=True
                )
            ]
        self.protocol = client.ClientProtocol(
            uri.parse_uri(f"ws://127.0.0.1:{port}{path}"),
            extensions=extensions,
            max_size=None,
        )
        self.sock = socket.create_connection(("127.0.0.1", port), 10 * UNIT)
        self.protocol.send_request(self.protocol.connect())
        self.flush()
        self.response: Any = None
        while self.response is None:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection during the handshake"
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if self.response is None:
                    self.response = event

    @property
    def accepted(self) -> bool:
        """Whether the server answered ``101``."""
        return bool(self.response.status_code == 101)

    def flush(self) -> None:
        """Send what the protocol has to send."""
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def frame(self, payload: bytes) -> bytes:
        """One binary message of ``payload`` as bytes, to send as often as wanted."""
        self.protocol.send_binary(payload)
        return b"".join(self.protocol.data_to_send())

    def close_code(self, seconds: float = 5) -> int | None:
        """Read until the server's close frame; its code (``None``: none came)."""
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + seconds * UNIT
        while self.protocol.close_rcvd is None and time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            self.protocol.receive_data(data)
            self.protocol.events_received()
        received = self.protocol.close_rcvd
        return None if received is None else int(received.code)

    def close(self) -> None:
        """Close the socket without a word."""
        with contextlib.suppress(OSError):
            self.sock.close()
