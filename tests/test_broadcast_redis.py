"""Tests of aiopyramid.broadcast's redis:// backend against a real redis-server.

Each test starts its own ``redis-server`` on a free loopback port, without
persistence; several :class:`Broadcast` objects on one loop stand for several
workers (each has its own connections, as a worker would).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from aiopyramid.broadcast import Broadcast, BroadcastUnavailable, get_broadcast
from tests.harness.asgi_client import websocket_scope
from tests.harness.inprocess import next_messages
from tests.harness.redis_server import RedisServer
from tests.harness.servers import (
    UNIT,
    free_port,
    import_required,
    wait_until_async,
)

pytestmark = pytest.mark.server
redis_asyncio = import_required("redis.asyncio")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


def run(coroutine):
    """Run a test coroutine with a bounded time."""
    return asyncio.run(asyncio.wait_for(coroutine, 60 * UNIT))


async def clients(url: str) -> list[dict]:
    """Redis's CLIENT LIST, minus the connection asking."""
    admin = redis_asyncio.Redis.from_url(url)
    try:
        listed = await admin.client_list()
        me = await admin.client_id()
        return [c for c in listed if int(c["id"]) != me]
    finally:
        await admin.aclose()


def test_messages_cross_workers_with_their_type(redis_server):
    """A message published through one worker reaches subscribers of both."""
    one, two = Broadcast(redis_server.url), Broadcast(redis_server.url)

    async def main():
        async with (
            one.subscribe("room") as a,
            two.subscribe("room") as b,
        ):
            await one.publish("room", "hello")
            await two.publish("room", b"\x01\x02binary")
            assert await next_messages(a, 2) == ["hello", b"\x01\x02binary"]
            assert await next_messages(b, 2) == ["hello", b"\x01\x02binary"]
        await one.aclose()
        await two.aclose()

    run(main())


def test_foreign_publishers_are_understood(redis_server):
    """redis-cli style payloads arrive as text when UTF-8, else as bytes."""
    broadcast = Broadcast(redis_server.url)

    async def main():
        raw = redis_asyncio.Redis.from_url(redis_server.url)
        async with broadcast.subscribe("feed") as feed:
            await raw.publish("feed", "plain text")
            await raw.publish("feed", b"\xff\xfe")
            received = await next_messages(feed, 2)
        await raw.aclose()
        await broadcast.aclose()
        return received

    assert run(main()) == ["plain text", b"\xff\xfe"]


def test_prefix_keeps_applications_apart(redis_server):
    """Two prefixes on one Redis never see each other's channels."""
    app1 = Broadcast(redis_server.url, prefix="app1:")
    app2 = Broadcast(redis_server.url, prefix="app2:")

    async def main():
        async with app1.subscribe("room") as one, app2.subscribe("room") as two:
            await app2.publish("room", "for app2")
            await app1.publish("room", "for app1")
            assert await next_messages(one, 1) == ["for app1"]
            assert await next_messages(two, 1) == ["for app2"]
        await app1.aclose()
        await app2.aclose()

    run(main())


def test_one_connection_carries_every_subscription(redis_server):
    """200 subscriptions on 50 channels use one pub/sub connection."""
    broadcast = Broadcast(redis_server.url)

    async def main():
        subscriptions = [
            await broadcast.subscribe(f"ch{n % 50}").open() for n in range(200)
        ]
        await broadcast.publish("ch7", "x")
        listed = await clients(redis_server.url)
        assert [int(c["sub"]) for c in listed if c["flags"] == "P"] == [50]
        assert len(listed) == 2  # one pub/sub connection, one for publishing
        for subscription in subscriptions[:4]:
            assert subscription.channel != "ch7" or await next_messages(subscription, 1)
        for subscription in subscriptions:
            subscription.close()

        async def unsubscribed():
            """every channel is unsubscribed"""
            listed = await clients(redis_server.url)
            return [int(c["sub"]) for c in listed if c["flags"] == "P"] in ([], [0])

        await wait_until_async(unsubscribed, 10)
        await broadcast.aclose()
        assert await clients(redis_server.url) == []

    run(main())


def test_leave_and_join_again_quickly_stays_subscribed(redis_server):
    """Leaving a channel and joining it at once keeps it subscribed in Redis."""
    broadcast = Broadcast(redis_server.url)

    async def main():
        for _ in range(20):
            first = await broadcast.subscribe("flip").open()
            first.close()
            second = await broadcast.subscribe("flip").open()
            await broadcast.publish("flip", "still here")
            assert await next_messages(second, 1) == ["still here"]
            second.close()
        await broadcast.aclose()

    run(main())


def test_redis_stopped_and_restarted_mid_conversation(redis_server, caplog):
    """Publishing fails clearly while Redis is down; subscriptions come back."""
    broadcast = Broadcast(redis_server.url, reconnect_max_delay=0.2)
    dropping = Broadcast(redis_server.url, when_unavailable="drop")

    async def main():
        async with broadcast.subscribe("room") as room:
            await broadcast.publish("room", "before")
            assert await next_messages(room, 1) == ["before"]

            redis_server.stop()

            async def down():
                """the broadcast noticed Redis is gone"""
                return not broadcast.connected

            await wait_until_async(down, 10)
            with pytest.raises(BroadcastUnavailable, match="when_unavailable = drop"):
                await broadcast.publish("room", "lost")
            await dropping.publish("room", "dropped quietly")
            # A subscription opened during the outage returns at once.
            late = await asyncio.wait_for(broadcast.subscribe("late").open(), 1)

            redis_server.start()

            async def up():
                """the broadcast reconnected"""
                return broadcast.connected

            await wait_until_async(up, 10)

            async def delivered():
                """a message published after the restart arrives"""
                try:
                    await broadcast.publish("room", "after")
                    await broadcast.publish("late", "late too")
                except BroadcastUnavailable:
                    return False
                return True

            await wait_until_async(delivered, 10)
            assert "after" in await next_messages(room, 1)
            assert await next_messages(late, 1) == ["late too"]
            late.close()
        await broadcast.aclose()
        await dropping.aclose()

    with caplog.at_level("WARNING", logger="aiopyramid.broadcast"):
        run(main())
    text = caplog.text
    assert "lost Redis at" in text
    assert "is back; messages published meanwhile were lost" in text
    assert "message to 'room' dropped" in text


def test_slow_subscriber_does_not_delay_the_others(redis_server):
    """A subscriber that stops reading loses old messages; the others lose none."""
    broadcast = Broadcast(redis_server.url, queue_size=10)

    async def main():
        async with (
            broadcast.subscribe("fast") as fast,
            broadcast.subscribe("fast") as slow,
        ):
            # Were the hub to wait for the slow reader, the fast one would
            # wait forever: run()'s bound catches that, no pace is asserted.
            reader = asyncio.ensure_future(next_messages(fast, 500))
            for n in range(500):
                await broadcast.publish("fast", str(n))
            got = await reader
            assert got == [str(n) for n in range(500)]
            assert slow.dropped == 490
            assert await next_messages(slow, 10) == [str(n) for n in range(490, 500)]
        await broadcast.aclose()

    run(main())


def test_unreachable_redis_at_start_is_not_fatal():
    """With no Redis at all, subscribing works and publishing says what to do."""
    broadcast = Broadcast(f"redis://127.0.0.1:{free_port()}/0")

    async def main():
        assert broadcast.connected is False  # not used yet
        async with broadcast.subscribe("room") as room:
            assert room.closed is False
            assert broadcast.connected is False
            with pytest.raises(BroadcastUnavailable, match="cannot be reached"):
                await broadcast.publish("room", "x")
        await broadcast.aclose()

    run(main())


def test_many_websocket_cycles_leave_nothing_behind(redis_server):
    """Thousands of connect/subscribe/close cycles return tasks, greenlets,
    Redis connections and memory to where they started.

    A leak grows with the cycles, so memory is read after each of two equal
    halves: the second half must add (almost) nothing, whatever the first
    cost.  The time allowed follows from the warm-up cycles' own cost on
    this machine (coverage and tracemalloc included), not from a fixed total.
    """
    from tests.apps.rooms import room_app
    from tests.harness.inprocess import live_spawned_greenlets

    app = room_app(**{"aiopyramid.broadcast.url": redis_server.url})
    half = int(os.environ.get("AIOPYRAMID_TEST_BROADCAST_CYCLES", "2000")) // 2
    warm_up = 100

    async def connect_once():
        incoming = [
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": "hi"},
        ]
        sent = []
        echoed = asyncio.Event()

        async def receive():
            if incoming:
                return incoming.pop(0)
            await echoed.wait()  # the view's relay forwarded the message back
            return {"type": "websocket.disconnect", "code": 1000}

        async def send(message):
            sent.append(message)
            if message.get("text") == "hi":
                echoed.set()

        scope = websocket_scope("/class")
        await app(scope, receive, send)
        return sent

    async def snapshot():
        gc.collect()
        listed = await clients(redis_server.url)
        return (
            len(asyncio.all_tasks()),
            len(live_spawned_greenlets()),
            len(listed),
            tracemalloc.get_traced_memory()[0],
        )

    async def cycle(times: int) -> list[dict]:
        for _ in range(times):
            sent = await connect_once()
        return sent

    async def main():
        tracemalloc.start()
        try:
            started = time.monotonic()
            await cycle(warm_up)  # pools, caches, the worker's connections
            per_cycle = (time.monotonic() - started) / warm_up
            # Ten times the warm-up's pace: a hang, not a slow machine.
            allowed = 10 * per_cycle * half + 5 * UNIT
            tasks, greenlets, connections, _ = await snapshot()

            async def back() -> bool:
                """Tasks, greenlets and Redis connections as before (once the
                last unsubscribe reaches Redis)."""
                return (await snapshot())[:3] == (tasks, greenlets, connections)

            sizes = []
            for _ in range(2):
                sent = await asyncio.wait_for(cycle(half), allowed)
                with contextlib.suppress(AssertionError):  # asserted below
                    await wait_until_async(back)
                sizes.append(await snapshot())
        finally:
            tracemalloc.stop()
            await get_broadcast(app.app.registry).aclose()
        assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send"]
        for size in sizes:
            assert size[:3] == (tasks, greenlets, connections)
        grown = sizes[1][3] - sizes[0][3]
        # Measured: a few hundred bytes in all; a task, a greenlet or a frame
        # kept per cycle is kilobytes each.
        assert grown < 20 * half, f"the second {half} cycles kept {grown} bytes"

    asyncio.run(main())
