"""HTTP/1.1 over plain sockets: the minimal clients of the server tests.

Far cheaper than a full HTTP client, so that hundreds of concurrent requests
measure the server rather than the client, and free to send what no proper
client would.
"""

from __future__ import annotations

import asyncio
import socket

from tests.harness.servers import UNIT


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection; read until the server closes.

    A reset or a silence of ``timeout`` (times UNIT) ends the answer too.
    """
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(timeout * UNIT)
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


async def raw_request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """``method`` ``path`` (no body) over a fresh connection: status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", "Host: x", "Connection: close"]
    if method == "POST":
        lines.append("Content-Length: 0")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def raw_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """GET ``path`` over a fresh connection: the status and the body."""
    return await raw_request(port, "GET", path, headers)


async def raw_post(port: int, path: str) -> tuple[int, bytes]:
    """POST to ``path`` with an empty body over a fresh connection."""
    return await raw_request(port, "POST", path)


class Answer:
    """One response read by ``h11``: status, headers (lower-case names) and body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.headers!r}, {self.body[:200]!r})"


def answer_to(port: int, data: bytes, method: str = "GET") -> Answer:
    """Send ``data`` (one request, any bytes) on a fresh connection; read the answer.

    The answer is parsed by ``h11`` as a client that asked ``method``, so a
    response that is not well framed fails the test instead of passing it.
    """
    import h11

    client = h11.Connection(h11.CLIENT)
    # h11 frames the answer by what was asked: tell it, without sending it.
    client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    status, headers, body = 0, {}, b""
    with socket.create_connection(("127.0.0.1", port), 10 * UNIT) as sock:
        sock.sendall(data)
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {
                    name.decode("latin-1"): value.decode("latin-1")
                    for name, value in event.headers
                }
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    return Answer(status, headers, body)
