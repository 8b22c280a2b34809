"""The worker's websocket connection object, in process, on a fake transport.

The server tests (``tests/websocket/config/test_gunicorn.py``,
``tests/gunicorn/test_websocket_frames.py``) drive it through gunicorn; these
reach the paths a well-behaved client and application never take.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from typing import Any

import pytest

from tests.harness.servers import import_required, wait_until_async

import_required("gunicorn")
import_required("websockets")

from websockets.frames import Opcode  # noqa: E402
from websockets.protocol import Protocol, Side, State  # noqa: E402

from aiopyramid.gunicorn._websocket import Settings, Websocket  # noqa: E402


class Transport:
    """Records what the connection writes, and whether reading is paused."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.paused = False

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def scope(key: bytes | None = None) -> dict[str, Any]:
    """A websocket scope as gunicorn builds it."""
    key = base64.b64encode(os.urandom(16)) if key is None else key
    headers = [
        (b"host", b"x"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-version", b"13"),
    ]
    if key:
        headers.append((b"sec-websocket-key", key))
    return {"type": "websocket", "path": "/ws", "headers": headers}


def client_frames(*messages: str) -> bytes:
    """Masked text frames, as a client sends them."""
    client = Protocol(Side.CLIENT, state=State.OPEN)
    for message in messages:
        client.send_text(message.encode())
    return b"".join(client.data_to_send())


def serve(app: Any, transport: Transport, **options: Any) -> tuple[Websocket, Any]:
    """A connection for ``app`` and the task running it (inside a loop)."""
    websocket = Websocket(
        transport,  # type: ignore[arg-type]
        scope(options.pop("key", None)),
        app,
        logging.getLogger("test"),
        settings=Settings(**options),
    )
    return websocket, asyncio.ensure_future(websocket.run())


def test_closing_before_accepting_refuses_with_403() -> None:
    """An application that closes first refuses the handshake: 403."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    async def main() -> bytes:
        transport = Transport()
        _, task = serve(app, transport)
        await task
        return bytes(transport.written)

    assert asyncio.run(main()).startswith(b"HTTP/1.1 403 Forbidden\r\n")


def test_a_denial_response_is_sent_whole_then_the_connection_ends() -> None:
    """websocket.http.response messages become one response, closing the connection."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 410,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"moved")],
            }
        )
        await send(
            {"type": "websocket.http.response.body", "body": b"gone", "more_body": True}
        )
        await send({"type": "websocket.http.response.body", "body": b" away"})

    async def main() -> bytes:
        transport = Transport()
        _, task = serve(app, transport)
        await task
        return bytes(transport.written)

    assert asyncio.run(main()) == (
        b"HTTP/1.1 410 Gone\r\ncontent-type: text/plain\r\nx-why: moved\r\n"
        b"Connection: close\r\n\r\ngone away"
    )


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "websocket.http.response.body"}], "before its body"),
        (
            [{"type": "websocket.http.response.start", "status": 403}] * 2,
            "sent twice",
        ),
        (
            [
                {"type": "websocket.http.response.start", "status": 403},
                {"type": "websocket.http.response.body"},
                {"type": "websocket.http.response.body"},
            ],
            "complete already",
        ),
        (
            [
                {
                    "type": "websocket.http.response.start",
                    "status": 403,
                    "headers": [(b"x-split", b"a\r\nb: c")],
                }
            ],
            "invalid websocket denial header",
        ),
        (
            [
                {"type": "websocket.accept"},
                {"type": "websocket.http.response.start", "status": 403},
            ],
            "too late to deny",
        ),
    ],
    ids=[
        "body-first",
        "start-twice",
        "body-after-the-end",
        "split-header",
        "after-accept",
    ],
)
def test_denial_messages_out_of_order_are_errors(messages: Any, error: str) -> None:
    """A denial out of order, or with a header that could split it, raises."""
    failures: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            for message in messages:
                await send(message)
        except (RuntimeError, ValueError) as failure:
            failures.append(failure)

    async def main() -> None:
        _, task = serve(app, Transport(), close_timeout=0.1)
        await task

    asyncio.run(main())
    assert len(failures) == 1 and error in str(failures[0]), failures


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "websocket.send", "text": "early"}, "before websocket.send"),
        ({"type": "websocket.bogus"}, "unexpected ASGI message"),
        (
            {"type": "websocket.accept", "headers": [(b"x-bad", b"a\r\nb")]},
            "invalid websocket response header",
        ),
    ],
)
def test_application_mistakes_answer_500_and_are_logged(
    caplog: pytest.LogCaptureFixture, message: dict[str, Any], error: str
) -> None:
    """A failing application before the handshake gets 500, and the error is logged."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(message)

    async def main() -> bytes:
        transport = Transport()
        _, task = serve(app, transport)
        await task
        return bytes(transport.written)

    assert asyncio.run(main()).startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert error in caplog.text


def test_bytes_before_the_accept_wait_for_it() -> None:
    """Frames a client sends before the 101 are read once the handshake is accepted."""
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(0.01)  # the input: an application slow to accept
        await send({"type": "websocket.accept", "headers": [(b"x-extra", b"1")]})
        received.append(await receive())
        with pytest.raises(RuntimeError, match="sent twice"):
            await send({"type": "websocket.accept"})

    async def main() -> Transport:
        transport = Transport()
        websocket, task = serve(app, transport, close_timeout=0.1)
        websocket.feed_data(client_frames("first", "y" * 70000))
        assert transport.paused  # over 64 KiB before the handshake
        await task
        return transport

    transport = asyncio.run(main())
    assert received == [{"type": "websocket.receive", "text": "first"}]
    assert transport.written.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nx-extra: 1\r\n" in transport.written


def test_a_bad_handshake_is_answered_by_websockets() -> None:
    """A handshake gunicorn let through but websockets refuses: its answer, no app."""
    failures: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "websocket.accept"})
        except OSError as error:
            failures.append(error)
            raise

    async def main() -> bytes:
        transport = Transport()
        _, task = serve(app, transport, key=b"")
        await task
        return bytes(transport.written)

    assert asyncio.run(main()).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert "handshake refused with 400" in str(failures[0])


def test_a_client_gone_before_the_accept() -> None:
    """The application learns of a client that left before the handshake."""
    messages: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        messages.append(await receive())
        await send({"type": "websocket.accept"})

    async def main() -> None:
        websocket, task = serve(app, Transport())
        await asyncio.sleep(0)
        websocket.feed_eof()
        await task

    asyncio.run(main())
    assert messages == [{"type": "websocket.disconnect", "code": 1006}]


def test_unread_messages_pause_reading_until_taken() -> None:
    """Sixteen waiting messages pause reading; taking them resumes it."""
    paused: list[bool] = []
    fed = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await fed.wait()  # the messages pile up meanwhile
        paused.append(transport.paused)
        for _ in range(20):
            await receive()
        paused.append(transport.paused)
        await send({"type": "websocket.close", "code": 1000})
        with pytest.raises(OSError):
            await send({"type": "websocket.send", "bytes": b"late"})

    async def main() -> None:
        websocket, task = serve(app, transport, close_timeout=0.1)
        await asyncio.sleep(0)
        websocket.feed_data(client_frames(*(str(n) for n in range(20))))
        fed.set()
        await task

    transport = Transport()
    asyncio.run(main())
    assert paused == [True, False]


def test_pings_stop_with_the_connection() -> None:
    """With pings on, a ping goes out; a close ends them."""

    async def pinged() -> bool:
        """A ping went out (a frame's first byte: FIN and opcode 9)."""
        return b"\x89" in transport.written.partition(b"\r\n\r\n")[2]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await wait_until_async(pinged)

    async def main() -> bytes:
        _, task = serve(app, transport, ping_interval=0.01, close_timeout=0.01)
        await task
        return bytes(transport.written)

    transport = Transport()
    written = asyncio.run(main())
    client = Protocol(Side.CLIENT, state=State.OPEN)
    client.receive_data(written.partition(b"\r\n\r\n")[2])
    opcodes = [frame.opcode for frame in client.events_received()]
    assert opcodes[0] is Opcode.PING and opcodes[-1] is Opcode.CLOSE
