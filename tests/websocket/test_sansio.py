"""What both websocket servers share (``aiopyramid/websocket/_sansio.py``)."""

from __future__ import annotations

import asyncio
import inspect

from tests.harness.servers import import_required, wait_until_async

import_required("websockets")

from websockets.frames import Close, Frame, Opcode  # noqa: E402
from websockets.protocol import Protocol, Side, State  # noqa: E402

from aiopyramid.websocket._sansio import (  # noqa: E402
    Keepalive,
    MessageAssembler,
    server_protocol,
)


def client_bytes(*frames: Frame) -> bytes:
    """Frames as a client sends them (masked)."""
    client = Protocol(Side.CLIENT, state=State.OPEN)
    for frame in frames:
        client.send_frame(frame)
    return b"".join(client.data_to_send())


def test_websockets_names_we_rely_on() -> None:
    """Protocol.recv_frame(frame) and current_size exist in websockets."""
    assert list(inspect.signature(Protocol.recv_frame).parameters) == ["self", "frame"]
    protocol = Protocol(Side.SERVER, state=State.OPEN)
    assert protocol.current_size is None


def test_close_inside_a_fragmented_message_is_normal() -> None:
    """A close between fragments ends the connection with the client's code."""
    protocol = server_protocol(None)
    protocol.receive_data(
        client_bytes(
            Frame(Opcode.TEXT, b"frag", fin=False),
            Frame(Opcode.CLOSE, Close(1000, "").serialize()),
        )
    )
    assert protocol.close_rcvd is not None and protocol.close_rcvd.code == 1000
    assert protocol.close_sent is not None and protocol.close_sent.code == 1000


def test_messages_out_of_fragments_and_pongs_aside() -> None:
    """Fragments make one message; text as bytes if asked; pongs go to on_pong."""
    protocol = server_protocol(None)
    pongs: list[bytes] = []
    protocol.receive_data(
        client_bytes(
            Frame(Opcode.TEXT, "κό".encode(), fin=False),
            Frame(Opcode.PONG, b"p"),
            Frame(Opcode.CONT, "σμε".encode()),
            Frame(Opcode.BINARY, b"\x00"),
        )
    )
    frames = protocol.events_received()
    assembler = MessageAssembler(protocol, text_as_str=False)
    assert assembler.take(frames, pongs.append) == ["κόσμε".encode(), b"\x00"]
    assert pongs == [b"p"]


def test_keepalive_without_timeout_pings_on_and_stops_when_closed() -> None:
    """No ping_timeout: pings keep coming; once the connection closes, none."""

    async def main() -> list[Opcode]:
        protocol = server_protocol(None)
        client = Protocol(Side.CLIENT, state=State.OPEN)
        opcodes: list[Opcode] = []

        async def pinged_twice() -> bool:
            """Two pings went out."""
            client.receive_data(b"".join(protocol.data_to_send()))
            opcodes.extend(frame.opcode for frame in client.events_received())
            return opcodes.count(Opcode.PING) >= 2

        keepalive = Keepalive(protocol, 0.01, None, lambda: None)
        keepalive.start()
        await wait_until_async(pinged_twice)
        protocol.send_close(1000)
        await asyncio.sleep(0.03)  # the input: three intervals without a ping
        keepalive.stop()
        await pinged_twice()  # reads what came since
        return opcodes

    opcodes = asyncio.run(main())
    assert opcodes.count(Opcode.PING) >= 2
    assert opcodes[-1] is Opcode.CLOSE
