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
