"""A websocket client on a plain socket, for the raw frame tests of each server.

Frames are built by hand (hostile ones could not be built otherwise); the
server's frames are read with the ``websockets`` client protocol.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections import deque

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.utils import apply_mask

from tests.harness.servers import UNIT, ServerProcess

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "TEXT",
    "RawClient",
    "raw_frame",
    "still_echoes",
]

#: How long the client waits for the server's next frame, by default.
WAIT = 5 * UNIT


def raw_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0
) -> bytes:
    """A masked client frame, built by hand so that it may break every rule."""
    head = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", head, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", head, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", head, 0x80 | 127, length)
    mask = os.urandom(4)
    masked = apply_mask(payload, mask)
    return header + mask + masked


TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
PING, PONG, CLOSE = Opcode.PING, Opcode.PONG, Opcode.CLOSE


class RawClient:
    """A websocket client on a plain socket, reading frames with websockets."""

    def __init__(self, server: ServerProcess, path: str = "/ws/echo") -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), 10 * UNIT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, f"no handshake answer: {head!r}"
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.protocol = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
        self.frames: deque[Frame] = deque()
        self.answer_pings = True
        self.eof = False
        if rest:
            self._feed(rest)

    def send(self, *frames: bytes) -> None:
        """Send these frames in one write."""
        self.sock.sendall(b"".join(frames))

    def _feed(self, data: bytes) -> None:
        if data:
            self.protocol.receive_data(data)
        else:
            self.eof = True
            self.protocol.receive_eof()
        for frame in self.protocol.events_received():
            if frame.opcode is not PING:
                self.frames.append(frame)
        # Pongs to the server's pings, and the echo of its close frame.
        for data in self.protocol.data_to_send():
            if data and (self.answer_pings or self.protocol.state is not State.OPEN):
                self.sock.sendall(data)

    def frame(self, timeout: float = WAIT) -> Frame | None:
        """The server's next frame other than a ping; ``None`` at EOF."""
        deadline = time.monotonic() + timeout
        while not self.frames and not self.eof:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no frame from the server in time"
            self.sock.settimeout(remaining)
            self._feed(self.sock.recv(1 << 20))
        return self.frames.popleft() if self.frames else None

    def listen(self, seconds: float) -> None:
        """Read (and answer pings) for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self.eof:
            self.sock.settimeout(remaining)
            try:
                self._feed(self.sock.recv(1 << 20))
            except TimeoutError:
                break

    def message(self, timeout: float = WAIT) -> tuple[Opcode, bytes]:
        """The next data frame (the echo never fragments): opcode and payload."""
        frame = self.frame(timeout)
        assert frame is not None, "the server closed the connection"
        assert frame.opcode in (TEXT, BINARY) and frame.fin, frame
        return frame.opcode, bytes(frame.data)

    def closed_with(self, timeout: float = WAIT, reset_ok: bool = False) -> int:
        """Read up to the server's close frame and the end of TCP: the code.

        ``reset_ok``: TCP may end with a reset after the close frame (a
        server that ends TCP without waiting for the client's answer to
        its close frame, or with frames of the client's unread, as
        granian does).
        """
        return self.close_frame(timeout, reset_ok).code

    def close_frame(self, timeout: float = WAIT, reset_ok: bool = False) -> Close:
        """:meth:`closed_with`, but the whole close frame: code and reason."""
        frame = self.frame(timeout)
        while frame is not None and frame.opcode is not CLOSE:
            frame = self.frame(timeout)
        assert frame is not None, "TCP closed without a close frame"
        try:
            assert self.frame(timeout) is None, "more after the close frame"
        except ConnectionResetError:
            if not reset_ok:
                raise
        return Close.parse(frame.data)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def still_echoes(server: ServerProcess) -> bool:
    """A new connection to the echo view echoes: the server survived."""
    raw = RawClient(server)
    try:
        raw.send(raw_frame(TEXT, b"still here"))
        return raw.message() == (TEXT, b"still here")
    finally:
        raw.close()
