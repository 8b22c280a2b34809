"""The loop watchdog: it says, while it happens, that something holds the loop.

Code that blocks on the loop's thread (a route factory waiting for a
database pool, a ``time.sleep`` in a coroutine view) stops every request the
loop serves, and nothing else says so.  Each watched loop runs a heartbeat,
a callback that re-arms itself every quarter of the threshold and notes when
it is next due.  One daemon thread per process, off every loop, looks at the
heartbeats as often; when one is late by more than the threshold, the thread
logs, while the loop is still held, the stack of the loop's thread and what
to do about it, once per stall.  When the heartbeat runs again it logs how
long the loop was held in all.

A heartbeat is late only while its loop's thread is busy elsewhere, so the
lateness is a lower bound of how long the loop was held: a stall is never
overstated, and one longer than the threshold by less than a quarter of it
may go unreported.  Code holding the GIL (a C extension that does not
release it) keeps the watchdog's thread from running too: such a stall is
reported, from the loop, once it ends.

The cost is one timer callback four times per threshold on each loop, and a
thread that wakes as often while any loop is watched (none otherwise).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Mapping
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.threadlocal import get_current_registry
from zope.interface import Interface

from ._settings import limit_setting

__all__ = [
    "ADVICE",
    "DEFAULT_SECONDS",
    "SETTING",
    "IWatchdog",
    "ensure_watched",
    "threshold_from_settings",
    "watch",
    "watched_stalls",
]

log = logging.getLogger("aiopyramid.watchdog")

#: The setting that sets the threshold, in seconds.
SETTING = "aiopyramid.watchdog.seconds"
#: The threshold when the setting is absent.
DEFAULT_SECONDS = 1.0
#: What the warning tells the reader to do.
ADVICE = (
    "Plain code that blocks runs on the loop's thread: set "
    "`aiopyramid.mode = thread` (the request's plain code on a pool thread) for "
    "blocking drivers, or use an asyncio driver (postgresql+asyncpg) with "
    "`aiopyramid.mode = greenlet`; see docs/migration.rst."
)
#: The innermost frames of the loop's thread that a warning shows.
STACK_LIMIT = 40


class IWatchdog(Interface):
    """Utility: the watchdog's threshold in seconds for a registry (0.0: off).

    Registered by :func:`aiopyramid.includeme` from :data:`SETTING`.
    """


def threshold_from_settings(settings: Mapping[str, Any]) -> float | None:
    """The threshold that :data:`SETTING` asks for; ``None`` turns it off.

    Absent: :data:`DEFAULT_SECONDS`.  ``0``, ``off``, ``false`` or ``none``:
    ``None``.  Anything but a finite number of seconds, 0 or more, raises
    :class:`~pyramid.exceptions.ConfigurationError` saying what to write.
    """
    advice = (
        f"Write e.g. {SETTING} = {DEFAULT_SECONDS:g} (the default), or "
        f"{SETTING} = off to turn the loop watchdog off."
    )
    value = settings.get(SETTING)
    if value is not None and str(value).strip().lower() in ("off", "false", "none"):
        return None
    seconds = limit_setting(
        settings, SETTING, float, DEFAULT_SECONDS, advice, "a number of seconds"
    )
    if seconds is not None and not math.isfinite(seconds):
        raise ConfigurationError(
            f"{SETTING} must be a number of seconds, not {value!r}. {advice}"
        )
    return seconds


class _Watch:
    """One watched loop: its heartbeat (on the loop) and its state."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self.loop = weakref.ref(loop)  # the watchdog must not keep a loop alive
        self.seconds = seconds
        self.interval = seconds / 4
        #: When the heartbeat is next due (``time.monotonic()``).
        self.due = time.monotonic() + self.interval
        #: The thread that runs the loop, as ``sys._current_frames()`` keys it.
        self.thread = threading.get_ident()
        #: Whether the current stall was reported (read and set under _lock).
        self.reported = False
        #: The longest lateness of the heartbeat so far, in seconds.
        self.max_stall = 0.0
        self.stopped = False
        # An empty context: a timer handle otherwise keeps a copy of the
        # caller's, which may be a request's, alive as long as the loop.
        self.context = contextvars.Context()
        loop.call_later(self.interval, self.beat, context=self.context)

    def beat(self) -> None:
        """The heartbeat, on the loop: note the lateness, re-arm."""
        if self.stopped:
            return
        now = time.monotonic()
        held = now - self.due
        if held > self.max_stall:
            self.max_stall = held
        if held > self.seconds:
            with _lock:  # against a report being written right now
                self.due = now + self.interval
                reported, self.reported = self.reported, False
            self._came_back(held, reported)
        else:
            self.due = now + self.interval
        self.thread = threading.get_ident()
        # A running loop cannot be closed; closing it drops this handle, so
        # the heartbeat ends with the loop.
        asyncio.get_running_loop().call_later(
            self.interval, self.beat, context=self.context
        )

    def _came_back(self, held: float, reported: bool) -> None:
        if reported:
            log.info(
                "the event loop is free again after %.2f s held (%s = %g)",
                held,
                SETTING,
                self.seconds,
            )
        else:
            log.warning(
                "the event loop was held for %.2f s (more than %s = %g) and came "
                "back before the watchdog could take its thread's stack (a stall "
                "just over the threshold, or code holding the GIL). %s",
                held,
                SETTING,
                self.seconds,
                ADVICE,
            )

    def check(self, now: float, overslept: float) -> bool:
        """Report the loop if it is held (on the watchdog's thread).

        ``overslept`` is how late this thread itself woke up.  Returns False
        once the loop is closed or gone: stop watching it.
        """
        loop = self.loop()
        if loop is None or loop.is_closed() or self.stopped:
            return False
        if not loop.is_running():
            # A stopped loop holds nobody up; count from when it runs again.
            self.due = now + self.interval
            return True
        due = self.due
        held = now - due
        if held <= self.seconds or self.reported:
            return True
        if overslept > self.seconds:
            # This thread was held too: code held the GIL, which it has only
            # just let go of, most likely back in the loop before the
            # heartbeat could run.  Its stack now would blame the loop
            # itself: the heartbeat reports the stall, or the next round.
            return True
        # The frames first, then the check that the loop is still held: a
        # stack taken after it came back would blame the wrong code.
        frame = sys._current_frames().get(self.thread)
        stack = (
            "".join(traceback.format_stack(frame, STACK_LIMIT))
            if frame is not None
            else "  (the stack of the loop's thread is not available)\n"
        )
        with _lock:
            if self.due == due:  # still held: its heartbeat has not run
                self.reported = True
                # Under the lock: the heartbeat's "free again" line follows it.
                log.warning(
                    "the event loop has been held for %.2f s so far (more than "
                    "%s = %g); every request it serves waits. %s The loop's "
                    "thread is running:\n%s",
                    held,
                    SETTING,
                    self.seconds,
                    ADVICE,
                    stack.rstrip("\n"),
                )
        return True


#: Guards _watches, _thread and each watch's ``reported``.
_lock = threading.Lock()
_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = (
    weakref.WeakKeyDictionary()
)
_thread: threading.Thread | None = None
#: Loops that ensure_watched has seen (watched or not, as their app said).
_seen: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def watch(loop: asyncio.AbstractEventLoop, seconds: float | None) -> None:
    """Report ``loop`` whenever it is held longer than ``seconds``.

    Call it on the loop's thread, while the loop runs or before it does.
    Calling it again changes the threshold; ``None`` or ``0`` stops watching
    (or never starts).  The first watched loop starts the watchdog's thread.
    """
    global _thread
    with _lock:
        current = _watches.get(loop)
        if current is not None:
            if seconds:
                current.seconds, current.interval = seconds, seconds / 4
            else:
                current.stopped = True
                del _watches[loop]
            return
        if not seconds or loop.is_closed():
            return
        _watches[loop] = _Watch(loop, seconds)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(
                target=_patrol, name="aiopyramid-watchdog", daemon=True
            )
            _thread.start()


def watched_stalls(loop: asyncio.AbstractEventLoop) -> float:
    """The longest time, in seconds, that ``loop`` was held (0.0 if unwatched).

    A stall counts once the loop is free again; it is measured as the
    lateness of the heartbeat, so it may fall short of the true hold by up
    to a quarter of the threshold.
    """
    current = _watches.get(loop)
    return 0.0 if current is None else current.max_stall


def ensure_watched(
    registry: Any = None, loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Watch ``loop`` (the running one) as ``registry``'s application asks.

    The servers call this when a loop starts serving and on each request; it
    costs a set lookup once the loop is known.  ``registry`` (Pyramid's
    current one if ``None``, looked up only the first time) gives the
    threshold that :func:`aiopyramid.includeme` registered; an application
    that never included aiopyramid is not watched.  The first application
    seen on a loop decides for the loop.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    if loop in _seen:
        return
    _seen.add(loop)
    if registry is None:
        registry = get_current_registry()
    watch(loop, registry.queryUtility(IWatchdog))


def _patrol() -> None:
    """The watchdog's thread: check every watched loop, until none is left."""
    overslept = 0.0
    while True:
        pause = _patrol_once(overslept)
        if pause is None:
            return
        wake = time.monotonic() + pause
        time.sleep(pause)
        overslept = time.monotonic() - wake


def _patrol_once(overslept: float) -> float | None:
    """Check every watched loop; return how long to sleep (None: exit)."""
    # A function of its own, so that nothing of a loop stays alive (in a
    # local variable) while the thread sleeps.
    global _thread
    with _lock:
        watches = list(_watches.values())
        if not watches:
            _thread = None  # this thread: a new watch starts another
            return None
    now = time.monotonic()
    for watched in watches:
        if not watched.check(now, overslept):
            _forget(watched)
    return min(w.interval for w in watches)


def _forget(watched: _Watch) -> None:
    with _lock:
        loop = watched.loop()
        if loop is not None and _watches.get(loop) is watched:
            del _watches[loop]


def _after_fork_in_child() -> None:
    # A forked child has none of its parent's threads, and a lock the
    # watchdog's thread held at the fork would never be released: start
    # afresh, so that the child's servers watch their loops again.
    global _lock, _thread
    _lock = threading.Lock()
    _thread = None
    for watched in list(_watches.values()):
        watched.stopped = True
    _watches.clear()
    _seen.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
