"""Run Pyramid applications on asyncio.

``config.include('aiopyramid')`` makes coroutine views (``async def``, or the
legacy generator style) run on the event loop and every other view run in a
thread pool, so an existing application keeps working unchanged while new
views go asynchronous.  See :mod:`aiopyramid.helpers` for the bridge that
lets plain code wait for coroutines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _addons, _startup, _threadlocal, _watchdog

if TYPE_CHECKING:
    from pyramid.config import Configurator

__all__ = ["includeme"]

#: The version, stated here only: setup.py and the docs read it from this line.
__version__ = "1.0.0.dev0"


def includeme(config: Configurator) -> None:
    """Set aiopyramid up in a Pyramid configuration.

    * :class:`~aiopyramid.config.CoroutineOrExecutorMapper` becomes the default
      view mapper (``config.set_view_mapper(None)`` restores Pyramid's own);
      the ``aiopyramid.mode`` setting chooses where plain code runs:
      ``executor`` (the default: plain views on a pool thread), ``greenlet``
      (plain views in the request's greenlet, with
      :class:`~aiopyramid.config.CoroutineOrGreenletMapper`) or ``thread``
      (all of a request's plain code on a pool thread, through a tween above
      the others);
    * Pyramid's current request and registry are kept per request rather than
      per thread, so interleaved requests never see each other's;
    * the ``aiopyramid.executor.max_workers`` setting, if given, sizes a thread
      pool of its own for plain views; otherwise they run in the loop's
      default executor (which ``loop.set_default_executor`` may replace);
    * the ``aiopyramid.debug.slow_callback_ms`` setting, if given, logs every
      coroutine view step that holds the loop longer than that;
    * every loop that serves the application is watched: a loop held longer
      than ``aiopyramid.watchdog.seconds`` (default 1; ``0`` or ``off``: not
      watched) is logged, while it is held, with the stack of the code
      holding it (see :doc:`serving`);
    * add-ons that keep request state per thread are kept per request:
      pyramid_tm, if the application uses it, gets a transaction manager per
      request unless the ``tm.manager_hook`` setting names one, and
      pyramid_debugtoolbar's logging and performance panels are adapted
      (see :doc:`compatibility`);
    * ``request.broadcast`` publishes and subscribes across workers, through
      the backend that ``aiopyramid.broadcast.url`` names (see
      :mod:`aiopyramid.broadcast`).
    """
    from ._modes import configure_thread_mode, mode_from_settings
    from ._slow_views import slow_view_threshold
    from .config import (
        CoroutineOrExecutorMapper,
        CoroutineOrGreenletMapper,
        IExecutor,
        executor_from_settings,
    )

    _threadlocal.install()
    settings = config.get_settings() or {}  # None for a bare Registry()
    mode = mode_from_settings(settings)
    if mode == "greenlet":
        config.set_view_mapper(CoroutineOrGreenletMapper)
    else:
        config.set_view_mapper(CoroutineOrExecutorMapper)
    if mode == "thread":
        configure_thread_mode(config)
    slow_view_threshold(settings)  # a bad value fails here, not at the first view
    # Read now, so that a bad value fails here; the servers look it up once
    # per loop (aiopyramid._watchdog.ensure_watched).
    watchdog = _watchdog.threshold_from_settings(settings) or 0.0
    config.registry.registerUtility(watchdog, _watchdog.IWatchdog)
    _addons.includeme(config)
    executor = executor_from_settings(settings, mode)
    if executor is not None:
        config.registry.registerUtility(executor, IExecutor)
    config.registry.registerUtility(True, _startup.IIncluded)
    config.include("aiopyramid.broadcast")
