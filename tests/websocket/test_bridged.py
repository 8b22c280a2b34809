"""The ``ws`` rules the ASGI and RSGI ``ws`` objects share, on a stand-in server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from aiopyramid.websocket._bridged import BridgedWebsocket
from aiopyramid.websocket.exceptions import WebsocketClosed
from aiopyramid.websocket.interface import Websocket


class Stand(BridgedWebsocket):
    """A server handing over ``incoming``: messages, ``None`` (an event that
    is no message) or an ``int`` (the client closed with that code)."""

    def __init__(self, incoming: Iterable[Any] = ()) -> None:
        super().__init__()
        self.incoming = list(incoming)
        self.sent: list[str | bytes] = []
        self.closes: list[tuple[int, str]] = []
        self.ended = 0
        self.gone = False

    @property
    def subprotocols(self) -> list[str]:
        return ["chat"]

    async def _handshake(
        self, subprotocol: str | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> None:
        self.accepted = True
        self.subprotocol = subprotocol

    async def _receive_one(self) -> str | bytes | None:
        item = self.incoming.pop(0)
        if isinstance(item, int):
            self._closed(item)
            return None
        return item  # type: ignore[no-any-return]

    async def _send_one(self, message: str | bytes) -> None:
        if self.gone:
            raise self._gone() from ConnectionResetError("reset by peer")
        self.sent.append(message)

    async def _send_close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    def end(self) -> None:
        self.ended += 1


def test_a_subclass_is_a_websocket():
    """What the base holds and a subclass adds make the one interface."""
    assert isinstance(Stand(), Websocket)


def test_recv_hands_over_messages_until_the_close():
    """Messages in order, events that are none skipped, then None for ever."""
    ws = Stand(["text", None, b"binary", 1001])

    async def main() -> list[Any]:
        return [await ws.recv() for _ in range(4)]

    assert asyncio.run(main()) == ["text", b"binary", None, None]
    assert (ws.closed, ws.close_code) == (True, 1001)


def test_use_bytes_hands_text_over_as_utf8():
    """With use_bytes, text arrives as its UTF-8 bytes; binary is unchanged."""
    ws = Stand(["é", b"\xff"])
    ws.use_bytes = True

    async def main() -> list[Any]:
        return [await ws.recv(), await ws.recv()]

    assert asyncio.run(main()) == ["é".encode(), b"\xff"]


def test_send_on_a_closed_connection_raises_websocket_closed():
    """The close code is in the message, and nothing reaches the server."""
    ws = Stand([1000])

    async def main() -> None:
        await ws.recv()
        await ws.send("late")

    with pytest.raises(WebsocketClosed, match="websocket closed with code 1000"):
        asyncio.run(main())
    assert ws.sent == []


def test_a_client_gone_while_sending_closes_with_1006():
    """The server's OSError is the cause of the WebsocketClosed raised."""
    ws = Stand()
    ws.gone = True
    with pytest.raises(WebsocketClosed, match="the client went away") as raised:
        asyncio.run(ws.send(b"x"))
    assert isinstance(raised.value.__cause__, ConnectionResetError)
    assert (ws.closed, ws.close_code) == (True, 1006)


def test_close_closes_once():
    """The first close reaches the server with its code; later ones do nothing."""
    ws = Stand()

    async def main() -> None:
        await ws.close(4000, "bye")
        await ws.close(1011)

    asyncio.run(main())
    assert ws.closes == [(4000, "bye")]
    assert (ws.closed, ws.close_code) == (True, 4000)


def test_access_lines_say_101_then_the_close_code():
    """log_to's logger gets 101 on accepting and the close code on finishing."""
    lines: list[tuple[Any, ...]] = []
    environ = {"PATH_INFO": "/ws"}
    ws = Stand()
    ws.log_to(lambda *line: lines.append(line), environ)

    async def main() -> None:
        await ws.accept("chat")
        await ws.finish()

    asyncio.run(main())
    assert [line[:4] for line in lines] == [
        (environ, "101", [], 0),
        (environ, "1000", [], 0),
    ]
    assert all(line[4] >= 0 for line in lines)
    assert (ws.subprotocol, ws.closes, ws.ended) == ("chat", [(1000, "")], 1)


def test_finish_after_the_client_closed_still_ends_the_connection():
    """A connection the client closed is given back, with the client's code."""
    lines: list[tuple[Any, ...]] = []
    ws = Stand([1001])
    ws.log_to(lambda *line: lines.append(line), {})

    async def main() -> None:
        await ws.accept()
        await ws.recv()
        await ws.finish()

    asyncio.run(main())
    assert [line[1] for line in lines] == ["101", "1001"]
    assert (ws.closes, ws.ended) == ([], 1)


def test_without_a_logger_nothing_is_logged():
    """log_to(None, ...) and no log_to at all write no line, and do not fail."""
    ws = Stand()
    ws.log_to(None, {})
    ws.log("101")
    Stand().log("101")
