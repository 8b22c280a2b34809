"""The Redis backend of :mod:`aiopyramid.broadcast`: one pub/sub connection per loop.

Two tasks per event loop (per worker) keep it: a reader that owns the
subscribing connection, reconnecting with backoff whenever it breaks, and a
writer that brings the channels Redis has been told about in line with the
channels this loop's subscriptions want.  Because the writer compares states
rather than replaying calls, a channel left and joined again in quick
succession, or a reconnection in the middle, always ends subscribed exactly
when some subscription wants it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import random
from typing import TYPE_CHECKING, Any

from pyramid.exceptions import ConfigurationError

from ._broadcast_errors import BroadcastUnavailable
from ._broadcast_memory import Hub
from ._broadcast_subscription import Message, Subscription, detached_task

if TYPE_CHECKING:
    from .broadcast import Broadcast

log = logging.getLogger("aiopyramid.broadcast")

#: First byte of a payload published by aiopyramid: text, or binary.
TEXT, BINARY = b"\x01", b"\x02"
#: How long subscribe() waits for Redis to confirm, before returning anyway.
CONFIRM_TIMEOUT = 5.0
FIRST_DELAY = 0.1


def check_installed() -> None:
    """Refuse a redis:// URL at configuration time if redis is not installed."""
    if importlib.util.find_spec("redis") is None:
        raise ConfigurationError(
            "aiopyramid.broadcast.url names Redis, but the redis package is not "
            "installed: pip install 'aiopyramid[redis]'."
        )


def encode(message: Message) -> bytes:
    """The Redis payload of ``message``: a marker byte keeps str and bytes apart."""
    if isinstance(message, str):
        return TEXT + message.encode("utf-8")
    return BINARY + message


def decode(payload: bytes) -> Message:
    """A message back from its payload; foreign ones (redis-cli) as text if UTF-8."""
    marker = payload[:1]
    if marker == TEXT:
        return payload[1:].decode("utf-8")
    if marker == BINARY:
        return payload[1:]
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload


def _errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def _recancel() -> None:
    """Raise a cancellation that redis-py lost.

    On Python 3.10 and 3.11, ``asyncio.wait_for`` (which redis-py uses around
    socket writes) returns normally when the awaited operation completes in
    the same step as a cancel, and the cancel is lost: a loop that keeps
    running would then hang the loop's shutdown.  3.11 keeps count of
    requested cancels, so the loop can notice and stop itself.
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError


class RedisHub(Hub):
    """The subscriptions of one loop, carried by one Redis pub/sub connection."""

    def __init__(self, broadcast: Broadcast, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(broadcast, loop)
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "socket_connect_timeout": 2,
            "socket_keepalive": True,
        }
        # Our own reader reconnects (with backoff, resubscribing): the client's
        # retries would only hide the outage.  A publish retries once, so the
        # first one after Redis came back goes through a fresh connection.
        self.subscriber = redis.asyncio.Redis.from_url(
            broadcast.url, retry=Retry(NoBackoff(), 0), **options
        )
        self.publisher = redis.asyncio.Redis.from_url(
            broadcast.url,
            retry=Retry(NoBackoff(), 1),
            single_connection_client=True,
            socket_timeout=5,
            **options,
        )
        self.errors = _errors()
        self.prefix = broadcast.prefix.encode("utf-8")
        #: Whether the pub/sub connection is up.
        self.connected = False
        self.pubsub: Any = None
        self.sent: set[str] = set()  # channels SUBSCRIBEd on this connection
        self.confirmed: set[str] = set()  # ... and confirmed by Redis
        self.waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.dirty = asyncio.Event()
        self.outage_logged = False
        #: Done once the first connection attempt has succeeded or failed.
        self.first_attempt: asyncio.Future[None] = loop.create_future()
        self.tasks = [detached_task(self.read()), detached_task(self.write())]

    def key(self, channel: str) -> bytes:
        return self.prefix + channel.encode("utf-8")

    async def add(self, subscription: Subscription) -> None:
        await super().add(subscription)
        channel = subscription.channel
        self.dirty.set()
        await asyncio.shield(self.first_attempt)
        if not self.connected or channel in self.confirmed:
            return  # Redis is down: the reader subscribes when it is back
        waiter = self.loop.create_future()
        self.waiters.setdefault(channel, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, CONFIRM_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("Redis did not confirm the subscription to %r", channel)
        finally:
            waiting = self.waiters.get(channel, [])
            if waiter in waiting:
                waiting.remove(waiter)

    def unwanted(self, channel: str) -> None:
        self.dirty.set()

    async def publish(self, channel: str, message: Message) -> None:
        try:
            await self.publisher.publish(self.key(channel), encode(message))
        except self.errors as error:
            if self.broadcast.when_unavailable == "drop":
                log.warning(
                    "Redis unreachable, message to %r dropped: %s", channel, error
                )
                return
            raise BroadcastUnavailable(
                f"Redis at {self.broadcast.url} cannot be reached ({error}); the "
                f"message to {channel!r} was not published. Retry later, catch "
                "aiopyramid.broadcast.BroadcastUnavailable, or set "
                "aiopyramid.broadcast.when_unavailable = drop."
            ) from error

    async def read(self) -> None:
        """Keep the pub/sub connection up and hand its messages out."""
        try:
            await self.read_forever()
        finally:
            # Cancelled: by aclose(), or by the loop shutting down (asyncio.run
            # and servers cancel what is left), which otherwise leaves the
            # clients to be closed by the garbage collector, on a closed loop.
            with contextlib.suppress(*self.errors):
                await self.publisher.aclose()
                await self.subscriber.aclose()

    async def read_forever(self) -> None:
        delay = FIRST_DELAY
        while True:
            pubsub: Any = self.subscriber.pubsub()
            try:
                await pubsub.connect()
                self.pubsub, self.connected = pubsub, True
                self.sent.clear()
                self.confirmed.clear()
                self.dirty.set()  # resubscribe whatever is wanted now
                if self.outage_logged:
                    log.warning(
                        "Redis at %s is back; messages published meanwhile were lost",
                        self.broadcast.url,
                    )
                    self.outage_logged = False
                delay = FIRST_DELAY
                self.attempted()
                while True:
                    self.handle(await pubsub.get_message(timeout=None))
                    _recancel()
            except self.errors as error:
                self.connected = False
                if not self.outage_logged:
                    log.warning(
                        "lost Redis at %s (%s); subscriptions resume when it is back",
                        self.broadcast.url,
                        error,
                    )
                    self.outage_logged = True
                self.attempted()
            finally:
                self.connected = False
                with contextlib.suppress(*self.errors):
                    await pubsub.aclose()
            # Exponential backoff with jitter, so that the workers do not all
            # knock at once on a Redis that has just restarted.
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.broadcast.reconnect_max_delay)

    def attempted(self) -> None:
        if not self.first_attempt.done():
            self.first_attempt.set_result(None)

    def handle(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        raw = message["channel"]
        channel = raw[len(self.prefix) :].decode("utf-8", "replace")
        if message["type"] == "message":
            self.deliver(channel, decode(message["data"]))
        elif message["type"] == "subscribe" and channel in self.sent:
            self.confirmed.add(channel)
            for waiter in self.waiters.pop(channel, []):
                if not waiter.done():
                    waiter.set_result(None)

    async def write(self) -> None:
        """Tell Redis about the channels wanted, whenever they change."""
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            pubsub = self.pubsub
            if not self.connected:
                continue  # the reader sets dirty again once reconnected
            join = [c for c in self.channels if c not in self.sent]
            leave = [c for c in self.sent if c not in self.channels]
            self.sent.update(join)
            self.sent.difference_update(leave)
            self.confirmed.difference_update(leave)
            try:
                if join:
                    await pubsub.subscribe(*[self.key(c) for c in join])
                if leave:
                    await pubsub.unsubscribe(*[self.key(c) for c in leave])
            except self.errors:
                pass  # the reader sees the same broken connection and reconnects
            _recancel()

    async def aclose(self) -> None:
        await super().aclose()
        while not all(task.done() for task in self.tasks):
            for task in self.tasks:
                task.cancel()  # again if redis-py swallowed it (see _recancel)
            await asyncio.wait(self.tasks, timeout=0.1)
