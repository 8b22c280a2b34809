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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyramid.exceptions import ConfigurationError
from pyramid.threadlocal import get_current_registry
from zope.interface import Interface

from ._broadcast_errors import (
    BroadcastError,
    BroadcastUnavailable,
    InvalidChannel,
    MessageTooLarge,
    SlowSubscriber,
)
from ._broadcast_memory import Hub
from ._broadcast_subscription import (
    Message,
    Relay,
    Subscription,
    check_channel,
)
from ._settings import positive_setting
from .websocket.interface import Websocket

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

OVERFLOW_POLICIES = ("drop_oldest", "close")
UNAVAILABLE_POLICIES = ("raise", "drop")


class IBroadcast(Interface):
    """The registry utility under which ``config.include('aiopyramid')`` puts
    the application's :class:`Broadcast`."""


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
        #: Messages that may wait in each subscription's queue.
        self.queue_size = queue_size
        #: What a full queue does: ``drop_oldest`` or ``close``.
        self.overflow = overflow
        #: The close code of a relay's websocket under ``overflow=close``.
        self.close_code = close_code
        #: The largest message, in bytes (UTF-8 for text).
        self.max_size = max_size
        #: What publish does while Redis is unreachable: ``raise`` or ``drop``.
        self.when_unavailable = when_unavailable
        #: Put before every Redis channel name.
        self.prefix = prefix
        #: The longest wait between two reconnection attempts, in seconds.
        self.reconnect_max_delay = reconnect_max_delay
        self._hubs: dict[asyncio.AbstractEventLoop, Hub] = {}

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

    def _hub(self) -> Hub:
        loop = asyncio.get_running_loop()
        hub = self._hubs.get(loop)
        if hub is None:
            for old in [old for old in self._hubs if old.is_closed()]:
                del self._hubs[old]
            if self.url.startswith("memory://"):
                hub = Hub(self, loop)
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
        check_channel(channel)
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

    def relay(self, channel: str, ws: Websocket) -> Relay:
        """A :class:`Relay` of ``channel`` to websocket ``ws``."""
        return Relay(self, channel, ws)

    @property
    def connected(self) -> bool:
        """Whether this loop's backend connection is up (memory: always)."""
        hub = self._hubs.get(asyncio.get_running_loop())
        if hub is None:  # not used on this loop yet: nothing is connected
            return self.url.startswith("memory://")
        return getattr(hub, "connected", True)

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


class _RequestBroadcast:
    """``request.broadcast``: the application's :class:`Broadcast`.

    Registered as a request *method* whose binding is the broadcast itself:
    Pyramid binds methods with ``__get__`` on every request, which costs next
    to nothing, whereas a request *property* makes Pyramid build a new
    request class for every request (about 17 µs each).
    """

    __name__ = "broadcast"

    def __init__(self, broadcast: Broadcast) -> None:
        self.broadcast = broadcast

    def __get__(self, request: Request, owner: Any = None) -> Broadcast:
        return self.broadcast


def includeme(config: Configurator) -> None:
    """Register a :class:`Broadcast` from the settings; add ``request.broadcast``."""
    broadcast = Broadcast.from_settings(config.get_settings() or {})
    config.registry.registerUtility(broadcast, IBroadcast)
    config.add_request_method(_RequestBroadcast(broadcast), "broadcast")
