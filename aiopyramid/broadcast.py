"""Publish and subscribe across connections, workers and machines.

A websocket held by one worker process is invisible to the others.  A
:class:`Broadcast` joins them: ``await publish(channel, message)`` reaches
every subscription to ``channel`` wherever it lives, through the backend that
the ``aiopyramid.broadcast.url`` setting names:

``memory://`` (the default)
    one process, no server: what an application's own tests use;
``redis://host:port/db`` or ``rediss://…``
    Redis pub/sub through ``redis.asyncio`` (``pip install 'aiopyramid[redis]'``):
    one connection per worker carries all its subscriptions, a second one
    its publishes.

``config.include('aiopyramid')`` makes one from the settings; it is
``request.broadcast`` and :func:`get_broadcast` (``registry`` optional).
Delivery is at most once, in publishing order per publisher, with no
history; :doc:`scaling` says what that means in practice.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pyramid.exceptions import ConfigurationError
from pyramid.threadlocal import get_current_registry
from zope.interface import Interface

from ._settings import positive_setting
from .exceptions import AiopyramidError

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from pyramid.request import Request

__all__ = [
    "Broadcast",
    "BroadcastError",
    "BroadcastUnavailable",
    "IBroadcast",
    "InvalidChannel",
    "MessageTooLarge",
    "Relay",
    "SlowSubscriber",
    "Subscription",
    "get_broadcast",
]

log = logging.getLogger(__name__)

Message = str | bytes
OVERFLOW_POLICIES = ("drop_oldest", "close")
UNAVAILABLE_POLICIES = ("raise", "drop")
_CHANNEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@/+=-]{0,199}")


class BroadcastError(AiopyramidError):
    """Base class of the errors of :mod:`aiopyramid.broadcast`."""


class BroadcastUnavailable(BroadcastError):
    """The backend (Redis) cannot be reached: the message was not published."""


class InvalidChannel(BroadcastError, ValueError):
    """A channel name that :class:`Broadcast` refuses."""


class MessageTooLarge(BroadcastError, ValueError):
    """A message longer than ``aiopyramid.broadcast.max_size``, refused unsent."""


class SlowSubscriber(BroadcastError):
    """A subscription fell behind by more than its queue, under ``overflow=close``."""


class IBroadcast(Interface):
    """The registry utility under which ``config.include('aiopyramid')`` puts
    the application's :class:`Broadcast`."""


class _Websocket(Protocol):
    closed: bool

    async def send(self, message: Message) -> None: ...  # pragma: no cover
    async def close(
        self, code: int = ..., reason: str = ...
    ) -> None: ...  # pragma: no cover


def _check_channel(channel: object) -> str:
    if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel):
        raise InvalidChannel(
            f"{channel!r} is not a usable channel name: use 1 to 200 letters, "
            "digits and _ . : @ / + = - (not starting with a punctuation mark), "
            "such as 'room:lobby'."
        )
    return channel


class Subscription:
    """Messages published to one channel, from the moment it is open.

    Use it as ``async with broadcast.subscribe(channel) as subscription:``
    and read it with ``async for message in subscription:``; iteration ends
    when the subscription is closed.  Messages wait in a queue of
    ``queue_size``; when it is full, the ``overflow`` policy either drops the
    oldest message (counted in :attr:`dropped`) or closes the subscription,
    and iteration raises :exc:`SlowSubscriber`.  Publishing never waits for a
    slow subscriber.
    """

    def __init__(self, broadcast: Broadcast, channel: str) -> None:
        self.broadcast = broadcast
        #: The channel's name.
        self.channel = _check_channel(channel)
        #: Messages dropped because the queue was full (``overflow=drop_oldest``).
        self.dropped = 0
        #: Called once when the queue overflows under ``overflow=close``.
        self.on_overflow: Callable[[], None] | None = None
        self._queue: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._hub: _Hub | None = None
        self._closed = False
        self._overflowed = False

    @property
    def closed(self) -> bool:
        """Whether the subscription has ended (closed, or overflowed)."""
        return self._closed

    async def open(self) -> Subscription:
        """Subscribe; messages published after this returns are received.

        With Redis unreachable it returns at once, and the subscription
        starts receiving when Redis is back.
        """
        if self._hub is not None or self._closed:
            raise BroadcastError(
                f"the subscription to {self.channel!r} was already opened; "
                "call broadcast.subscribe() again for a new one."
            )
        self._hub = self.broadcast._hub()
        await self._hub.add(self)
        return self

    def close(self) -> None:
        """Unsubscribe, and end iteration (messages still queued are dropped)."""
        if self._hub is not None:
            self._hub.remove(self)
        self._end()

    async def __aenter__(self) -> Subscription:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        """The next message, waiting for it if need be."""
        while not self._queue:
            if self._overflowed:
                raise SlowSubscriber(
                    f"the subscription to {self.channel!r} fell more than "
                    f"{self.broadcast.queue_size} messages behind and was closed; "
                    "read faster, raise aiopyramid.broadcast.queue_size, or set "
                    "aiopyramid.broadcast.overflow = drop_oldest."
                )
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def _deliver(self, message: Message) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.broadcast.queue_size:
            if self.broadcast.overflow == "close":
                self._overflowed = True
                self.close()
                if self.on_overflow is not None:
                    self.on_overflow()
                return
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(message)
        self._wake()

    def _end(self) -> None:
        if not self._closed:
            self._closed = True
            if self._overflowed:
                self._queue.clear()
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Relay:
    """Forward a channel to a websocket, in a task of its own.

    ``async with broadcast.relay(channel, ws):`` (or :meth:`start` and
    :meth:`stop`, from a view's ``on_open`` and ``on_close``) sends every
    message of ``channel`` to ``ws`` while the block runs, so the view is
    free to read from ``ws`` meanwhile.  It stops by itself when ``ws``
    closes.  Under ``overflow=close``, a client that stops reading gets its
    connection closed with ``close_code`` (1013, "try again later", unless
    the setting says otherwise).
    """

    def __init__(self, broadcast: Broadcast, channel: str, ws: _Websocket) -> None:
        self.ws = ws
        #: The subscription that feeds the websocket.
        self.subscription = broadcast.subscribe(channel)
        self.subscription.on_overflow = self._overflowed
        self._task: asyncio.Task[None] | None = None
        self._close_code = broadcast.close_code

    async def start(self) -> Relay:
        """Subscribe, then start forwarding; returns once subscribed."""
        await self.subscription.open()
        self._task = _detached_task(self._forward())
        return self

    async def stop(self) -> None:
        """Stop forwarding and unsubscribe (safe to call more than once)."""
        self.subscription.close()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def __aenter__(self) -> Relay:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _forward(self) -> None:
        from .websocket.exceptions import WebsocketClosed

        try:
            async for message in self.subscription:
                await self.ws.send(message)
        except (WebsocketClosed, SlowSubscriber):
            pass  # the connection is gone (or being closed by _overflowed)
        finally:
            self.subscription.close()

    def _overflowed(self) -> None:
        # The forwarding task may be stuck in ws.send() to a client that
        # stopped reading: cancel it, and close the connection from a task
        # of its own (this runs inside publish's delivery, which never waits).
        if self._task is not None:
            self._task.cancel()
        log.warning(
            "closing a websocket with %d: it fell more than %d messages behind on %r",
            self._close_code,
            self.subscription.broadcast.queue_size,
            self.subscription.channel,
        )
        _detached_task(self.ws.close(self._close_code, "too slow"))


_background: set[asyncio.Task[Any]] = set()


def _detached_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task that holds no request's context (and is not garbage collected)."""
    # create_task copies the current context: a request's, with its Pyramid
    # request inside.  An empty context keeps long-lived tasks from pinning it.
    task = contextvars.Context().run(asyncio.get_running_loop().create_task, coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


class _Hub:
    """The subscriptions of one event loop, and their backend (here: memory)."""

    def __init__(self, broadcast: Broadcast, loop: asyncio.AbstractEventLoop) -> None:
        self.broadcast = broadcast
        self.loop = loop
        self.channels: dict[str, set[Subscription]] = {}

    async def add(self, subscription: Subscription) -> None:
        self.channels.setdefault(subscription.channel, set()).add(subscription)

    def remove(self, subscription: Subscription) -> None:
        members = self.channels.get(subscription.channel)
        if members is not None:
            members.discard(subscription)
            if not members:
                del self.channels[subscription.channel]
                self.unwanted(subscription.channel)

    def unwanted(self, channel: str) -> None:
        """No subscription to ``channel`` is left (memory: nothing to do)."""

    def deliver(self, channel: str, message: Message) -> None:
        for subscription in list(self.channels.get(channel, ())):
            subscription._deliver(message)

    async def publish(self, channel: str, message: Message) -> None:
        self.deliver(channel, message)

    async def aclose(self) -> None:
        for members in list(self.channels.values()):
            for subscription in list(members):
                subscription.close()


class Broadcast:
    """Publish to channels and subscribe to them, through one backend.

    ``url`` chooses the backend (``memory://``, ``redis://…``, ``rediss://…``);
    the other arguments are the ``aiopyramid.broadcast.*`` settings of the
    same names (see :meth:`from_settings`).  One object serves every event
    loop of the process, with a backend connection per loop (per worker).
    """

    def __init__(
        self,
        url: str = "memory://",
        *,
        queue_size: int = 100,
        overflow: str = "drop_oldest",
        close_code: int = 1013,
        max_size: int = 2**20,
        when_unavailable: str = "raise",
        prefix: str = "",
        reconnect_max_delay: float = 5.0,
    ) -> None:
        scheme = url.partition("://")[0]
        if "://" not in url or scheme not in ("memory", "redis", "rediss"):
            raise ConfigurationError(
                f"aiopyramid.broadcast.url must be memory:// or "
                f"redis://host:port/db (or rediss://...), not {url!r}."
            )
        if scheme != "memory":
            from ._broadcast_redis import check_installed

            check_installed()
        _choice("aiopyramid.broadcast.overflow", overflow, OVERFLOW_POLICIES)
        _choice(
            "aiopyramid.broadcast.when_unavailable",
            when_unavailable,
            UNAVAILABLE_POLICIES,
        )
        if not (close_code in (1008, 1013) or 4000 <= close_code <= 4999):
            raise ConfigurationError(
                f"aiopyramid.broadcast.close_code must be 1008, 1013 or "
                f"4000-4999, not {close_code!r}."
            )
        #: The backend's URL.
        self.url = url
        self.queue_size = queue_size
        self.overflow = overflow
        self.close_code = close_code
        self.max_size = max_size
        self.when_unavailable = when_unavailable
        self.prefix = prefix
        self.reconnect_max_delay = reconnect_max_delay
        self._hubs: dict[asyncio.AbstractEventLoop, _Hub] = {}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Broadcast:
        """A :class:`Broadcast` from ``aiopyramid.broadcast.*`` settings.

        ``url`` (default ``memory://``), ``queue_size`` (100 messages per
        subscription), ``overflow`` (``drop_oldest`` or ``close``),
        ``close_code`` (1013; or 1008), ``max_size`` (bytes, default 1 MiB),
        ``when_unavailable`` (``raise`` or ``drop``), ``prefix`` (put before
        every Redis channel name, to share a Redis between applications) and
        ``reconnect_max_delay`` (seconds, default 5).  A bad value raises
        :class:`~pyramid.exceptions.ConfigurationError`.
        """
        key = "aiopyramid.broadcast."
        options: dict[str, Any] = {}
        for name, kind, advice in [
            ("queue_size", int, "Write a number of messages, such as 100."),
            ("close_code", int, "Write 1013 or 1008."),
            ("max_size", int, "Write a number of bytes, such as 1048576."),
            ("reconnect_max_delay", float, "Write a number of seconds, such as 5."),
        ]:
            value = positive_setting(settings, key + name, kind, advice)
            if value is not None:
                options[name] = value
        for name in ("overflow", "when_unavailable", "prefix"):
            text = settings.get(key + name)
            if text:
                options[name] = str(text).strip()
        url = str(settings.get(key + "url") or "memory://").strip()
        return cls(url, **options)

    def _hub(self) -> _Hub:
        loop = asyncio.get_running_loop()
        hub = self._hubs.get(loop)
        if hub is None:
            for old in [old for old in self._hubs if old.is_closed()]:
                del self._hubs[old]
            if self.url.startswith("memory://"):
                hub = _Hub(self, loop)
            else:
                from ._broadcast_redis import RedisHub

                hub = RedisHub(self, loop)
            self._hubs[loop] = hub
        return hub

    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` (``str`` or ``bytes``) to every subscriber of ``channel``.

        Raises :exc:`InvalidChannel`, :exc:`MessageTooLarge` (over
        ``max_size`` bytes), and :exc:`BroadcastUnavailable` when Redis cannot
        be reached, unless ``when_unavailable = drop`` (then the message is
        dropped and a warning logged).  From plain code (an executor view),
        call ``aiopyramid.helpers.synchronize(broadcast.publish)(channel,
        message)``.
        """
        _check_channel(channel)
        if not isinstance(message, (str, bytes)):
            raise TypeError(
                f"a broadcast message is str or bytes, not "
                f"{type(message).__name__}: encode it first (json.dumps, ...)."
            )
        size = (
            len(message.encode("utf-8")) if isinstance(message, str) else len(message)
        )
        if size > self.max_size:
            raise MessageTooLarge(
                f"a {size}-byte message to {channel!r} is over "
                f"aiopyramid.broadcast.max_size ({self.max_size} bytes); it was "
                "not sent. Send less, or raise the setting."
            )
        await self._hub().publish(channel, message)

    def subscribe(self, channel: str) -> Subscription:
        """A :class:`Subscription` to ``channel``, to open with ``async with``."""
        return Subscription(self, channel)

    def relay(self, channel: str, ws: _Websocket) -> Relay:
        """A :class:`Relay` of ``channel`` to websocket ``ws``."""
        return Relay(self, channel, ws)

    @property
    def connected(self) -> bool:
        """Whether this loop's backend connection is up (memory: always)."""
        hub = self._hubs.get(asyncio.get_running_loop())
        return hub is None or getattr(hub, "connected", True)

    async def aclose(self) -> None:
        """End this loop's subscriptions and close its backend connections."""
        hub = self._hubs.pop(asyncio.get_running_loop(), None)
        if hub is not None:
            await hub.aclose()


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigurationError(
            f"{name} must be one of {', '.join(allowed)}, not {value!r}."
        )


def get_broadcast(registry: Registry | None = None) -> Broadcast:
    """The application's :class:`Broadcast` (of the current registry by default)."""
    registry = registry if registry is not None else get_current_registry()
    broadcast = registry.queryUtility(IBroadcast)
    if broadcast is None:
        raise BroadcastError(
            "this application has no broadcast: add config.include('aiopyramid') "
            "to its configuration."
        )
    return broadcast  # type: ignore[no-any-return]


def _request_broadcast(request: Request) -> Broadcast:
    return get_broadcast(request.registry)


def includeme(config: Configurator) -> None:
    """Register a :class:`Broadcast` from the settings; add ``request.broadcast``."""
    config.registry.registerUtility(
        Broadcast.from_settings(config.get_settings()), IBroadcast
    )
    config.add_request_method(_request_broadcast, "broadcast", reify=True)
