"""Subscriptions and relays of :mod:`aiopyramid.broadcast` (re-exported there).

A subscription is a bounded queue that its hub (one per event loop, see
:mod:`aiopyramid._broadcast_memory`) fills without ever waiting; a relay is a
task that empties one into a websocket.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._broadcast_errors import BroadcastError, InvalidChannel, SlowSubscriber
from .websocket.interface import Websocket

if TYPE_CHECKING:
    from ._broadcast_memory import Hub
    from .broadcast import Broadcast

log = logging.getLogger("aiopyramid.broadcast")

Message = str | bytes
_CHANNEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@/+=-]{0,199}")


def check_channel(channel: object) -> str:
    """``channel`` itself if it is a usable name, else :exc:`InvalidChannel`."""
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
        self.channel = check_channel(channel)
        #: Messages dropped because the queue was full (``overflow=drop_oldest``).
        self.dropped = 0
        #: Called once when the queue overflows under ``overflow=close``.
        self.on_overflow: Callable[[], None] | None = None
        self._queue: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._hub: Hub | None = None
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

    def __init__(self, broadcast: Broadcast, channel: str, ws: Websocket) -> None:
        self.ws = ws
        #: The subscription that feeds the websocket.
        self.subscription = broadcast.subscribe(channel)
        self.subscription.on_overflow = self._overflowed
        self._task: asyncio.Task[None] | None = None
        self._close_code = broadcast.close_code

    async def start(self) -> Relay:
        """Subscribe, then start forwarding; returns once subscribed."""
        await self.subscription.open()
        self._task = detached_task(self._forward())
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
        detached_task(self.ws.close(self._close_code, "too slow"))


_background: set[asyncio.Task[Any]] = set()


def detached_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task that holds no request's context (and is not garbage collected)."""
    # create_task copies the current context: a request's, with its Pyramid
    # request inside.  An empty context keeps long-lived tasks from pinning it.
    task = contextvars.Context().run(asyncio.get_running_loop().create_task, coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task
