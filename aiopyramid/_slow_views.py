"""Timing coroutine views' steps: ``aiopyramid.debug.slow_callback_ms``.

A step is what a coroutine view runs between two awaits (and the call that
makes the coroutine): while it runs nothing else can use the loop.  The
mappers of :mod:`aiopyramid.config` time each step when the setting is
given, and one that holds the loop longer than that is logged, warning
level, on the ``aiopyramid.slow`` logger, with the view's name.
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Awaitable, Generator
from typing import Any

from ._settings import positive_setting

__all__ = ["SLOW_SETTING", "report_slow", "slow_view_threshold", "timed_steps"]

slow_log = logging.getLogger("aiopyramid.slow")

SLOW_SETTING = "aiopyramid.debug.slow_callback_ms"


def slow_view_threshold(settings: Any) -> float | None:
    """Seconds from the ``aiopyramid.debug.slow_callback_ms`` setting, or None."""
    milliseconds = positive_setting(
        settings,
        SLOW_SETTING,
        float,
        "Set it to e.g. 100 to log coroutine views that hold the event loop "
        "longer than 0.1 s, or leave it out.",
    )
    return None if milliseconds is None else milliseconds / 1000


def report_slow(name: str, seconds: float, limit: float) -> None:
    """Log coroutine view ``name`` if its step of ``seconds`` passed ``limit``."""
    if seconds > limit:
        slow_log.warning(
            "coroutine view %s held the event loop for %.0f ms (more than "
            "%s = %.0f): move blocking work to an executor (a plain view, or "
            "aiopyramid.helpers.use_executor)",
            name,
            seconds * 1000,
            SLOW_SETTING,
            limit * 1000,
        )


@types.coroutine
def timed_steps(
    awaitable: Awaitable[Any], name: str, limit: float
) -> Generator[Any, Any, Any]:
    """Await ``awaitable``, timing each of its steps on the loop.

    A step is one ``send`` (or ``throw``) into the coroutine: the code it
    runs between two awaits, during which nothing else can use the loop.
    """
    # Legacy generator-based coroutines have no __await__: they are their
    # own iterator.
    steps: Any = getattr(awaitable, "__await__", None)
    steps = steps() if steps is not None else awaitable
    resume, value = steps.send, None
    while True:
        started = time.perf_counter()
        try:
            yielded = resume(value)
        except StopIteration as stop:
            return stop.value
        finally:  # every step is timed, however it ended
            report_slow(name, time.perf_counter() - started, limit)
        try:
            value = yield yielded
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as error:  # cancellation included: into the view
            resume, value = steps.throw, error
        else:
            resume = steps.send
