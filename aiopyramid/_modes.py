"""Where a request's plain code runs: the ``aiopyramid.mode`` setting.

* ``executor`` (the default, the original library's way): the router,
  tweens, route factories and security policies run in the request's
  greenlet on the loop's thread; plain views run on a pool thread;
* ``greenlet``: plain views run in the request's greenlet too, on the loop's
  thread; for applications whose I/O goes through asyncio drivers
  (SQLAlchemy's sync API on ``postgresql+asyncpg``), where no thread is
  needed and a thread would only cost;
* ``thread``: all of a request's plain code (tweens, router, factories,
  security, plain views, pyramid_tm's commit) runs on a pool thread, for
  applications whose plain code blocks (sync database drivers, ZODB,
  blocking HTTP clients); coroutine views, async traversal and tweens that
  wait for coroutines still run their coroutines on the loop.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.events import ApplicationCreated
from pyramid.exceptions import ConfigurationError

from ._bridge import call_in_thread_greenlet, home_loop, running_loop, wait_for
from ._wsgi_input import make_seekable

SETTING = "aiopyramid.mode"

#: Each mode and what it does, for the error that lists them.
MODES = {
    "executor": "plain views on a pool thread, the rest of the request on the loop",
    "greenlet": "all plain code in the request's greenlet, on the loop's thread",
    "thread": "all of a request's plain code on a pool thread",
}


def mode_from_settings(settings: Mapping[str, Any]) -> str:
    """The ``aiopyramid.mode`` setting (``executor`` when absent).

    Anything but one of :data:`MODES` raises
    :class:`~pyramid.exceptions.ConfigurationError` listing them.
    """
    value = settings.get(SETTING)
    if value in (None, ""):
        return "executor"
    mode = str(value).strip().lower()
    if mode not in MODES:
        choices = "; ".join(f"{name} ({what})" for name, what in MODES.items())
        raise ConfigurationError(
            f"{SETTING} must be one of executor, greenlet or thread, not "
            f"{value!r}: {choices}."
        )
    return mode


def configure_thread_mode(config: Any) -> None:
    """Have each request's plain code run on a pool thread, once the
    application is made."""
    config.add_subscriber(_wrap_router, ApplicationCreated)


def _wrap_router(event: Any) -> None:
    # The router calls handle_request, which Pyramid itself set to the top of
    # the tween chain: wrapping it puts the thread hop above every tween,
    # whatever their order (tweens placed under INGRESS included).
    router = event.app
    router.handle_request = on_a_pool_thread(router.handle_request, router.registry)


def on_a_pool_thread(
    handler: Callable[[Any], Any], registry: Any
) -> Callable[[Any], Any]:
    """Wrap the router's ``handle_request`` for ``aiopyramid.mode = thread``.

    The wrapper hands the rest of the request (every tween, the router's
    route matching and traversal, the view, pyramid_tm's commit) to a thread
    of the plain-view pool while the request's greenlet waits on the loop.
    Websocket handshakes stay on the loop: their views are the loop's.
    Where no loop runs (WebTest, a plain WSGI server) the handler is simply
    called.
    """
    from .config import IExecutor

    executor = registry.queryUtility(IExecutor)

    def handle_request(request: Any) -> Any:
        loop = running_loop()
        environ = request.environ
        if loop is None or environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            return handler(request)
        make_seekable(request)  # some servers (uWSGI) read it in this greenlet only
        environ.pop("wsgi.file_wrapper", None)  # the server's, for the loop
        context = contextvars.copy_context()
        context.run(home_loop.set, loop)
        # Crossing to a pool thread: this greenlet waits on the loop, which
        # serves other requests meanwhile; in the thread, coroutines waited
        # for (and SQLAlchemy's asyncio drivers) run on this loop.
        future = loop.run_in_executor(
            executor, context.run, call_in_thread_greenlet, handler, request
        )
        return wait_for(future, "the request's plain code")

    return handle_request
