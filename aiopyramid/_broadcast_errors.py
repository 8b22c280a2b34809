"""The exceptions of :mod:`aiopyramid.broadcast` (re-exported there)."""

from __future__ import annotations

from .exceptions import AiopyramidError


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
