"""How the bridge hands responses to a server (``aiopyramid/_sending.py``).

Driven in process with ASGI messages on a real loop: bodies go in pieces,
a response waiting for its client holds no request slot and is cancelled
at the send deadline, a server's ``READY`` extension paces the pieces, and
a server's failing ``send`` is the client's leaving, not an error of the
application's.  Websockets have a budget of their own.
"""

from __future__ import annotations

import asyncio
import logging

from pyramid.config import Configurator
from pyramid.response import Response

from aiopyramid import asgi
from aiopyramid._sending import H2_PIECE, PIECE, READY, Senders, pieces
from aiopyramid.websocket.config import WebsocketMapper
from tests.harness.asgi_client import http_scope, websocket_scope

BODY = bytes(range(256)) * 4096  # 1 MiB


def app():
    """Pyramid with a 1 MiB body at /big, a small one at /small, a websocket at /ws."""

    async def idle(ws):
        while await ws.recv() is not None:
            pass

    with Configurator() as config:
        config.include("aiopyramid")
        config.add_route("big", "/big")
        config.add_view(lambda request: Response(BODY), route_name="big")
        config.add_route("small", "/small")
        config.add_view(lambda request: Response(b"small"), route_name="small")
        config.add_route("ws", "/ws")
        config.add_view(idle, route_name="ws", mapper=WebsocketMapper)
    return config.make_wsgi_app()


def scope(path: str, **extra) -> dict:
    """An ``http`` scope for ``path`` on ``example.org``, with ``extra`` keys."""
    return {**http_scope(path, [(b"host", b"example.org")]), **extra}


async def receive():
    """A client that sent its request and then waits."""
    await asyncio.sleep(3600)


def test_pieces_cut_only_what_is_larger_than_a_piece():
    """Small data is itself; larger data comes in slices that add up to it."""
    small = b"x" * 10
    assert next(pieces(small, 16)) is small
    assert b"".join(pieces(BODY, PIECE)) == BODY
    assert {len(p) for p in pieces(BODY, PIECE)} == {PIECE}


def test_a_large_body_goes_in_pieces_of_64_kib_and_16_kib_on_http2(run):
    """A 1 MiB body reaches the server in pieces, more_body true until the last."""
    bridge = asgi.make_asgi_app(app())

    async def body_of(the_scope):
        sent = []

        async def send(message):
            sent.append(message)

        await bridge(the_scope, receive, send)
        return [m for m in sent if m["type"] == "http.response.body"]

    for http_version, size in (("1.1", PIECE), ("2", H2_PIECE)):
        bodies = run(body_of(scope("/big", http_version=http_version)))
        assert b"".join(m["body"] for m in bodies) == BODY
        assert max(len(m["body"]) for m in bodies) == size
        assert [m["more_body"] for m in bodies][-2:] == [True, False]


def test_a_response_waiting_for_its_client_holds_no_slot_and_ends_at_the_deadline(
    run, caplog
):
    """With max_concurrency 1, a stuck response lets another in; it ends quietly."""
    bridge = asgi.make_asgi_app(app(), max_concurrency=1, send_timeout=0.3)
    never = asyncio.Event()

    async def stuck_send(message):
        if message["type"] == "http.response.body":
            await never.wait()  # a client that reads nothing

    async def main():
        stuck = asyncio.ensure_future(bridge(scope("/big"), receive, stuck_send))
        await asyncio.sleep(0.05)
        sent = []

        async def send(message):
            sent.append(message)

        await bridge(scope("/small"), receive, send)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(stuck, 5)
        return sent, asyncio.get_running_loop().time() - started

    with caplog.at_level(logging.INFO, "aiopyramid"):
        sent, waited = run(main())
    assert sent[0]["status"] == 200  # not 503: the stuck one held no slot
    assert waited < 1
    assert bridge.active == 0
    assert "aiopyramid.send_timeout" in caplog.text
    assert "failed" not in caplog.text


def test_pieces_wait_for_the_servers_ready_extension(run):
    """No piece is cut and sent while the server's READY future is pending."""
    bridge = asgi.make_asgi_app(app())
    full: list[asyncio.Future[None] | None] = [None]
    sent = []

    async def send(message):
        sent.append(message)
        if len(sent) == 3:  # the head, an empty body, one piece: now full
            full[0] = asyncio.get_running_loop().create_future()

    async def main():
        extensions = {READY: lambda: full[0]}
        served = asyncio.ensure_future(
            bridge(
                scope("/big", http_version="2", extensions=extensions), receive, send
            )
        )
        await asyncio.sleep(0.05)
        waiting = len(sent)
        full[0].set_result(None)
        full[0] = None
        await asyncio.wait_for(served, 5)
        return waiting

    assert run(main()) == 3
    assert sent[1] == {"type": "http.response.body", "body": b"", "more_body": True}
    assert b"".join(m.get("body", b"") for m in sent[1:]) == BODY


def test_a_failing_send_of_the_server_is_not_the_applications_failure(run, caplog):
    """A server whose send raises (its client gone) gets no 500 and no traceback."""
    bridge = asgi.make_asgi_app(app())

    async def send(message):
        if message["type"] == "http.response.body":
            raise ConnectionResetError("the peer is gone")

    run(bridge(scope("/big"), receive, send))
    assert "failed" not in caplog.text and "Traceback" not in caplog.text


def test_senders_count_slots_back_whatever_happens(run):
    """begin gives the slot back, end takes it again, a deadline fires once."""

    class Slots:
        active = 1

    class Sender:
        def __init__(self):
            self.timed_out = 0

        def time_out(self):
            self.timed_out += 1

    slots, sender, quick = Slots(), Sender(), Sender()
    senders = Senders(slots, 0.05)

    async def main():
        senders.begin(sender)
        senders.begin(quick)
        assert slots.active == -1
        senders.end(quick)
        await asyncio.sleep(0.2)
        senders.end(sender)

    run(main())
    assert slots.active == 1
    assert (sender.timed_out, quick.timed_out) == (1, 0)


def test_websockets_have_a_budget_of_their_own(run):
    """Past max_websockets: 503 with Retry-After (or a close); requests unaffected."""
    bridge = asgi.make_asgi_app(app(), max_concurrency=1, max_websockets=1)
    bridge.websockets = 1  # one websocket open

    async def handshake(extensions):
        sent = []

        async def ws_receive():
            return {"type": "websocket.connect"}

        async def send(message):
            sent.append(message)

        the_scope = dict(websocket_scope("/ws"), extensions=extensions)
        await bridge(the_scope, ws_receive, send)
        return sent

    refused = run(handshake({"websocket.http.response": {}}))
    assert refused[0]["type"] == "websocket.http.response.start"
    assert refused[0]["status"] == 503
    assert (b"Retry-After", b"1") in refused[0]["headers"]
    assert run(handshake({})) == [
        {"type": "websocket.close", "code": 1008, "reason": ""}
    ]

    async def request():
        sent = []

        async def send(message):
            sent.append(message)

        await bridge(scope("/small"), receive, send)
        return sent

    assert run(request())[0]["status"] == 200  # a full websocket budget
    assert bridge.active == 0
