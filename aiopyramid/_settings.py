"""Reading aiopyramid's numeric settings, with errors that say what to write."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pyramid.exceptions import ConfigurationError

N = TypeVar("N", int, float)

#: The largest websocket message unless ``aiopyramid.websocket.max_size``
#: says otherwise, on every server that reads it: 1 MiB, the ``websockets``
#: library's own default.
DEFAULT_WEBSOCKET_MAX_SIZE = 2**20


def positive_setting(
    settings: Mapping[str, Any], name: str, kind: Callable[[Any], N], advice: str
) -> N | None:
    """The setting ``name`` as a positive ``kind`` (None when it is absent).

    Anything else raises :class:`~pyramid.exceptions.ConfigurationError`
    naming the setting, the bad value and ``advice`` (what to write instead).
    """
    value = settings.get(name)
    if value in (None, ""):
        return None
    try:
        number = kind(value)
        if not number > 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{name} must be a positive number, not {value!r}. {advice}"
        ) from None
    return number


def limit_setting(
    settings: Mapping[str, Any],
    name: str,
    kind: Callable[[Any], N],
    default: N,
    advice: str,
    what: str = "a number, 0 or more",
) -> N | None:
    """The setting ``name`` as a limit: ``default`` when absent, ``None`` for 0.

    A negative value or anything that is not a ``kind`` raises
    :class:`~pyramid.exceptions.ConfigurationError` saying the setting must
    be ``what``, with ``advice``.
    """
    value = settings.get(name)
    if value in (None, ""):
        return default
    try:
        number = kind(value)
        if number < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{name} must be {what}, not {value!r}. {advice}"
        ) from None
    return number or None


def websocket_max_size(settings: Mapping[str, Any]) -> int:
    """``aiopyramid.websocket.max_size``: the largest websocket message, in bytes.

    :data:`DEFAULT_WEBSOCKET_MAX_SIZE` when absent; anything but a positive
    number raises :class:`~pyramid.exceptions.ConfigurationError`.
    """
    size = positive_setting(
        settings,
        "aiopyramid.websocket.max_size",
        int,
        "Set it to the largest websocket message to accept, in bytes (e.g. "
        "1048576), or leave it out for 1 MiB.",
    )
    return size or DEFAULT_WEBSOCKET_MAX_SIZE
