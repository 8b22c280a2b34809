"""Keeping thread-minded Pyramid add-ons right when requests share a thread.

Several add-ons keep per-request state per *thread*, which is per request
only when each request has a thread of its own.  Under aiopyramid many
requests interleave on the loop's thread, so :func:`includeme` adapts the
ones it knows about, through their public names, and only when the
application uses them:

* ``pyramid_tm`` takes its transaction manager from the ``tm.manager_hook``
  setting, or else uses ``transaction.manager``, which is per thread:
  interleaved requests would share (and commit or abort) one transaction.
  Unless the application chose a hook, a new explicit manager is made per
  request (``pyramid_tm.explicit_manager``).
* ``pyramid_debugtoolbar``'s logging panel files log records under the
  current thread; they are filed under the current request instead.
* ``pyramid_debugtoolbar``'s performance panel holds a
  :class:`threading.Lock` around the request while it profiles it; a second
  request blocking on it would stop the loop's thread for good while the
  first one waits on that loop.  The lock is replaced with one that makes
  the second request's greenlet wait while the loop runs on.

The toolbar's handler and lock are shared by every application of the
process, so they are replaced once, but each acts as adapted only for the
requests of applications that include aiopyramid: another application in
the same process (one served by a threaded WSGI server, say) keeps the
toolbar's own behaviour.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

import greenlet
from pyramid.interfaces import ITweens
from pyramid.threadlocal import get_current_request

from ._bridge import in_loop_greenlet, running_loop, wait_for
from ._startup import IIncluded

if TYPE_CHECKING:
    from pyramid.config import Configurator

#: The hook that pyramid_tm gets unless the application set one.
TM_MANAGER_HOOK = "pyramid_tm.explicit_manager"
#: pyramid_tm's tween, whose presence says that the application uses it.
TM_TWEEN = "pyramid_tm.tm_tween_factory"


def use_request_transaction_managers(registry: Any) -> None:
    """Give pyramid_tm a manager per request, if it is used and no hook is set.

    Runs when the configuration is committed, once every include has run, so
    that it knows whether pyramid_tm's tween is there; an application that
    does not use pyramid_tm gets no ``tm.manager_hook`` setting.  pyramid_tm
    reads the setting when each request begins.
    """
    settings = registry.settings
    tweens = registry.queryUtility(ITweens)
    if settings is None or tweens is None:
        return
    names = [name for name, _ in (*tweens.explicit, *tweens.implicit())]
    if TM_TWEEN in names and settings.get("tm.manager_hook") is None:
        settings["tm.manager_hook"] = TM_MANAGER_HOOK


def includes_aiopyramid(request: Any) -> bool:
    """Whether ``request`` belongs to an application that included aiopyramid."""
    query = getattr(getattr(request, "registry", None), "queryUtility", None)
    return query is not None and query(IIncluded) is not None


def adapt_debugtoolbar() -> None:
    """Adapt the debug toolbar's panels, if the application loaded them.

    Runs when the configuration is committed: by then
    ``config.include('pyramid_debugtoolbar')`` has imported its panels,
    whichever was included first.  Idempotent.  The adapted panels act
    differently only for requests of applications that include aiopyramid
    (:func:`includes_aiopyramid`).
    """
    logger_panel = sys.modules.get("pyramid_debugtoolbar.panels.logger")
    if logger_panel is not None:
        handler = logger_panel.handler
        if type(handler) is logger_panel.ThreadTrackingHandler:
            handler.records = weakref.WeakKeyDictionary()
            handler.__class__ = _request_tracking_handler(type(handler))
    performance_panel: Any = sys.modules.get("pyramid_debugtoolbar.panels.performance")
    if performance_panel is not None and not isinstance(
        performance_panel.lock, LoopFriendlyLock
    ):
        performance_panel.lock = LoopFriendlyLock()


def _request_tracking_handler(base: type[Any]) -> type[Any]:
    """A subclass of the logging panel's handler that files records per request."""

    class RequestTrackingHandler(base):  # type: ignore[misc, valid-type]
        """Files log records under the current request rather than the thread.

        The current request is Pyramid's, kept per request by aiopyramid and
        carried into executor threads, so what a plain view logs from its
        thread shows up too.  Requests of applications without aiopyramid
        have their records filed under the thread, as the toolbar does.
        Records logged outside any request are not kept: no panel would ever
        show them (the toolbar's own clears them when a request starts).
        Records are held weakly by request (or thread), so a request whose
        panel never collects them leaks nothing.
        """

        def emit(self, record: Any) -> None:
            if get_current_request() is not None:
                super().emit(record)

        def get_records(self, thread: Any = None) -> Any:
            return super().get_records(thread or _records_key())

        def clear_records(self, thread: Any = None) -> None:
            super().clear_records(thread or _records_key())

    return RequestTrackingHandler


def _records_key() -> Any:
    # Outside a request, or in a request of an application without
    # aiopyramid, the thread, as in the panel's own handler.
    request = get_current_request()
    if request is not None and includes_aiopyramid(request):
        return request
    return threading.current_thread()


def _of_another_app() -> bool:
    """Whether the current request belongs to an application without aiopyramid."""
    request = get_current_request()
    return request is not None and not includes_aiopyramid(request)


class LoopFriendlyLock:
    """A lock for the profiler that never blocks the loop's thread.

    In a request's greenlet on a running loop, a contended ``acquire`` makes
    the greenlet wait for the holder's release while the loop serves others;
    elsewhere (a thread of its own, or a request of an application that does
    not include aiopyramid) it blocks as a :class:`threading.Lock` does.  Only ``with
    lock:`` is supported, which is how the panel uses it.
    """

    def __init__(self) -> None:
        self._thread_lock = threading.Lock()
        self._holder: greenlet.greenlet | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def __enter__(self) -> None:
        loop = running_loop()
        if loop is None or in_loop_greenlet() or _of_another_app():
            self._thread_lock.acquire()
            return
        while self._holder is not None:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            # The greenlet sleeps until the holder's __exit__ wakes it; the
            # loop, free meanwhile, lets the holder finish.
            wait_for(waiter, "the debug toolbar's performance panel")
        self._holder = greenlet.getcurrent()

    def __exit__(self, *exc_info: object) -> None:
        if self._holder is not greenlet.getcurrent():
            self._thread_lock.release()
            return
        self._holder = None
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():  # a cancelled waiter left already
                waiter.set_result(None)
                return


def includeme(config: Configurator) -> None:
    """Adapt the add-ons that this configuration uses (see the module doc)."""
    # After every include has run: the toolbar's panels are loaded by then,
    # and pyramid_tm's tween is registered if the application uses it.
    config.action(None, adapt_debugtoolbar, order=10)
    config.action(None, use_request_transaction_managers, (config.registry,), order=10)
