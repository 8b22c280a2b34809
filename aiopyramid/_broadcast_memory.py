"""The memory:// backend of :mod:`aiopyramid.broadcast`, and every hub's base."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._broadcast_subscription import Message, Subscription
    from .broadcast import Broadcast


class Hub:
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
