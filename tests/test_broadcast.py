"""Tests of aiopyramid.broadcast on its memory:// backend, and its settings."""

from __future__ import annotations

import asyncio

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.view import view_config  # noqa: F401  (used by scanned apps)

from aiopyramid.broadcast import (
    Broadcast,
    BroadcastError,
    InvalidChannel,
    MessageTooLarge,
    SlowSubscriber,
    get_broadcast,
)
from aiopyramid.helpers import synchronize
from tests.apps.rooms import room_app
from tests.harness.asgi_client import texts, websocket_conversation, websocket_scope
from tests.harness.inprocess import get, make_app, next_messages
from tests.harness.servers import UNIT


def test_text_and_bytes_reach_every_subscriber(run):
    """Both subscribers of a channel get str as str and bytes as bytes."""
    broadcast = Broadcast()

    async def main():
        async with (
            broadcast.subscribe("room") as one,
            broadcast.subscribe("room") as two,
            broadcast.subscribe("other") as other,
        ):
            await broadcast.publish("room", "hello")
            await broadcast.publish("room", b"\x00\xff")
            assert await next_messages(one, 2) == ["hello", b"\x00\xff"]
            assert await next_messages(two, 2) == ["hello", b"\x00\xff"]
            assert other._queue == deque_of()

    run(main())


def deque_of(*items):
    from collections import deque

    return deque(items)


def test_iteration_ends_when_the_subscription_closes(run):
    """``async for`` ends once the subscription is closed from elsewhere."""
    broadcast = Broadcast()

    async def main():
        received = []
        async with broadcast.subscribe("c") as subscription:

            async def read():
                async for message in subscription:
                    received.append(message)

            reader = asyncio.ensure_future(read())
            await broadcast.publish("c", "one")
            await asyncio.sleep(0)
            subscription.close()
            await asyncio.wait_for(reader, UNIT)
        await broadcast.publish("c", "after")  # nobody left: fine
        return received

    assert run(main()) == ["one"]


def test_a_subscription_opens_once(run):
    """Opening the same subscription twice says to subscribe again."""
    broadcast = Broadcast()

    async def main():
        subscription = await broadcast.subscribe("c").open()
        with pytest.raises(BroadcastError, match=r"call broadcast.subscribe\(\)"):
            await subscription.open()
        subscription.close()

    run(main())


@pytest.mark.parametrize(
    "channel", ["", "has space", "glob*", "-leading", "x" * 201, 42, "é"]
)
def test_bad_channel_names_are_refused(run, channel):
    """Channel names outside the allowed set raise InvalidChannel with advice."""
    broadcast = Broadcast()
    with pytest.raises(InvalidChannel, match="such as 'room:lobby'"):
        broadcast.subscribe(channel)
    with pytest.raises(InvalidChannel):
        run(broadcast.publish(channel, "x"))


def test_good_channel_names_are_accepted(run):
    """Namespaced names with the allowed punctuation work."""
    broadcast = Broadcast()

    async def main():
        name = "app:room/42_a.b@c+d=e-f"
        async with broadcast.subscribe(name) as subscription:
            await broadcast.publish(name, "x")
            return await next_messages(subscription, 1)

    assert run(main()) == ["x"]


def test_messages_over_max_size_are_refused_unsent(run):
    """A message over max_size (counted in UTF-8 bytes) reaches nobody."""
    broadcast = Broadcast(max_size=4)

    async def main():
        async with broadcast.subscribe("c") as subscription:
            with pytest.raises(MessageTooLarge, match="5-byte message to 'c'"):
                await broadcast.publish("c", b"12345")
            with pytest.raises(MessageTooLarge, match="6-byte"):
                await broadcast.publish("c", "ééé")
            await broadcast.publish("c", "1234")
            return await next_messages(subscription, 1)

    assert run(main()) == ["1234"]


def test_other_message_types_are_refused(run):
    """Publishing a dict says to encode it first."""
    with pytest.raises(TypeError, match="encode it first"):
        run(Broadcast().publish("c", {"a": 1}))


def test_slow_subscriber_drops_oldest_and_others_get_all(run):
    """A full queue drops its oldest messages; a reading subscriber misses none."""
    broadcast = Broadcast(queue_size=3)

    async def main():
        async with (
            broadcast.subscribe("c") as slow,
            broadcast.subscribe("c") as fast,
        ):
            got = []
            for n in range(10):
                await broadcast.publish("c", str(n))
                got.extend(await next_messages(fast, 1))
            assert got == [str(n) for n in range(10)]
            assert slow.dropped == 7
            return await next_messages(slow, 3)

    assert run(main()) == ["7", "8", "9"]


def test_overflow_close_ends_the_slow_subscription(run):
    """Under overflow=close the slow subscription raises SlowSubscriber."""
    broadcast = Broadcast(queue_size=2, overflow="close")

    async def main():
        async with broadcast.subscribe("c") as slow:
            for n in range(3):
                await broadcast.publish("c", str(n))
            assert slow.closed
            with pytest.raises(SlowSubscriber, match="queue_size"):
                await slow.__anext__()

    run(main())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": "amqp://x"}, "must be memory:// or redis://"),
        ({"url": "memory"}, "must be memory:// or redis://"),
        ({"queue_size": "many"}, "queue_size must be a positive number"),
        ({"max_size": "0"}, "max_size must be a positive number"),
        ({"overflow": "block"}, "overflow must be one of drop_oldest, close"),
        ({"when_unavailable": "wait"}, "when_unavailable must be one of raise"),
        ({"close_code": "1000"}, "close_code must be 1008, 1013 or 4000-4999"),
    ],
)
def test_bad_settings_stop_the_configuration(settings, message):
    """Each bad setting raises ConfigurationError naming it."""
    prefixed = {f"aiopyramid.broadcast.{k}": v for k, v in settings.items()}
    with pytest.raises(ConfigurationError, match=message):
        make_app(lambda config: None, **prefixed)


def test_settings_reach_the_broadcast():
    """Every setting is read, as the right type."""
    settings = {
        "aiopyramid.broadcast.url": "redis://127.0.0.1:1/0",
        "aiopyramid.broadcast.queue_size": "7",
        "aiopyramid.broadcast.overflow": "close",
        "aiopyramid.broadcast.close_code": "1008",
        "aiopyramid.broadcast.max_size": "99",
        "aiopyramid.broadcast.when_unavailable": "drop",
        "aiopyramid.broadcast.prefix": "app1:",
        "aiopyramid.broadcast.reconnect_max_delay": "0.5",
    }
    broadcast = Broadcast.from_settings(settings)
    assert (
        broadcast.url,
        broadcast.queue_size,
        broadcast.overflow,
        broadcast.close_code,
        broadcast.max_size,
        broadcast.when_unavailable,
        broadcast.prefix,
        broadcast.reconnect_max_delay,
    ) == ("redis://127.0.0.1:1/0", 7, "close", 1008, 99, "drop", "app1:", 0.5)


def test_without_include_get_broadcast_says_what_to_add():
    """An application that never included aiopyramid gets the fix in the message."""
    with Configurator() as config:
        registry = config.registry
    with pytest.raises(BroadcastError, match=r"config.include\('aiopyramid'\)"):
        get_broadcast(registry)


def setup_views(config):
    """A coroutine view that publishes, an executor view that publishes."""

    async def post(request):
        await request.broadcast.publish("news", request.params["text"])
        return request.response

    def plain(request):
        # A plain view runs on a pool thread: synchronize hands the
        # coroutine to the request's loop and waits for it.
        synchronize(get_broadcast().publish)("news", "from a thread")
        return request.response

    config.add_route("post", "/post")
    config.add_route("plain", "/plain")
    config.add_view(post, route_name="post")
    config.add_view(plain, route_name="plain")


def test_coroutine_and_executor_views_publish(run):
    """request.broadcast from a coroutine view; synchronize from a plain view."""
    app = make_app(setup_views)
    broadcast = get_broadcast(app.registry)

    async def main():
        async with broadcast.subscribe("news") as subscription:
            assert (await get(app, "/post?text=hi")).status_code == 200
            assert (await get(app, "/plain")).status_code == 200
            return await next_messages(subscription, 2)

    assert run(main()) == ["hi", "from a thread"]


@pytest.mark.parametrize("path", ["/function", "/class"])
def test_websocket_views_relay_a_room(path):
    """A websocket view gets what it published back through its relay."""
    sent = websocket_conversation(room_app(), path, ["one", b"two"])
    received = texts(sent)
    assert [m for m in received if m != "joined"] == ["one", b"two"]


def test_public_names_are_exported_and_documented():
    """aiopyramid.broadcast exports its public names, each documented."""
    from pathlib import Path

    import aiopyramid.broadcast as module

    api = (Path(__file__).parent.parent / "docs" / "api.rst").read_text()
    for name in module.__all__:
        assert getattr(module, name).__doc__, name
        assert name in api, name
    public = {n for n in vars(module) if not n.startswith("_")}
    assert set(module.__all__) <= public


def test_relay_closes_a_websocket_that_stops_reading(run, caplog):
    """Under overflow=close, a client that stops reading is closed with 1013."""
    settings = {
        "aiopyramid.broadcast.queue_size": "2",
        "aiopyramid.broadcast.overflow": "close",
    }
    app = room_app(**settings)
    broadcast = get_broadcast(app.app.registry)
    closed = asyncio.Event()
    accepted = asyncio.Event()
    sent = []

    async def receive():
        if not accepted.is_set():
            return {"type": "websocket.connect"}
        await closed.wait()
        return {"type": "websocket.disconnect", "code": 1013}

    async def send(message):
        sent.append(message)
        if message["type"] == "websocket.accept":
            accepted.set()
        elif message["type"] == "websocket.close":
            closed.set()
        else:
            await asyncio.Event().wait()  # the client never reads again

    scope = websocket_scope("/function")

    async def main():
        conversation = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.wait_for(accepted.wait(), 5 * UNIT)
        for n in range(5):
            await broadcast.publish("room", str(n))
            await asyncio.sleep(0)
        await asyncio.wait_for(conversation, 5 * UNIT)

    with caplog.at_level("WARNING", logger="aiopyramid.broadcast"):
        run(main())
    closes = [m for m in sent if m["type"] == "websocket.close"]
    assert [m["code"] for m in closes] == [1013]
    assert "closing a websocket with 1013" in caplog.text


def test_aclose_ends_the_loops_subscriptions(run):
    """Broadcast.aclose() ends every open subscription's iteration."""
    broadcast = Broadcast()

    async def main():
        subscription = await broadcast.subscribe("c").open()
        reader = asyncio.ensure_future(next_messages(subscription, 1))
        await asyncio.sleep(0)
        await broadcast.aclose()
        with pytest.raises(StopAsyncIteration):
            await reader
        assert subscription.closed
        await broadcast.aclose()  # nothing left: fine

    run(main())


def test_each_event_loop_gets_its_own_hub():
    """A new loop (a new worker) gets a new hub; closed loops' hubs are dropped."""
    broadcast = Broadcast()

    async def use():
        async with broadcast.subscribe("c") as subscription:
            await broadcast.publish("c", "x")
            return await next_messages(subscription, 1), broadcast.connected

    assert asyncio.run(use()) == (["x"], True)
    assert asyncio.run(use()) == (["x"], True)
    assert len(broadcast._hubs) == 1


def test_redis_url_without_redis_installed_names_the_extra(monkeypatch):
    """A redis:// URL without the redis package says which extra to install."""
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "redis" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigurationError, match=r"pip install 'aiopyramid\[redis\]'"):
        Broadcast("redis://127.0.0.1:6379/0")
