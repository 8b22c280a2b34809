"""An example of a tween that waits for coroutines.

Tweens call each other as plain functions: the tween above expects a
response back, and the one below expects to be called.  A tween that needs
asynchronous I/O therefore waits for its coroutines with
:func:`~aiopyramid.helpers.synchronize`: it runs in the request's greenlet,
so waiting there lets the loop serve other requests while neither
neighbour knows anything happened.  The pattern::

    @synchronize
    async def lookup(request):
        ...  # await a database, a cache, another service

    def my_tween_factory(handler, registry):
        def my_tween(request):
            request.extra = lookup(request)   # waits; the loop runs on
            return handler(request)
        return my_tween

    config.add_tween('myapp.tweens.my_tween_factory')
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from .helpers import synchronize

__all__ = ["coroutine_logger_tween_factory"]

log = logging.getLogger(__name__)


@synchronize
async def _log(message: str, *args: Any) -> None:
    # Stands for real asynchronous work (sending the record to a log server,
    # say): yield to the loop once, then log.
    await asyncio.sleep(0)
    log.info(message, *args)


def coroutine_logger_tween_factory(
    handler: Callable[[Any], Any], registry: Any
) -> Callable[[Any], Any]:
    """Make a tween that logs each request and its outcome asynchronously.

    Add it with
    ``config.add_tween('aiopyramid.tweens.coroutine_logger_tween_factory')``.
    Records go to the ``aiopyramid.tweens`` logger at INFO level.
    """

    def coroutine_logger_tween(request: Any) -> Any:
        started = time.perf_counter()
        line = _request_line(request)
        _log("%s started", line)
        response = handler(request)
        _log(
            "%s answered %s in %.1f ms",
            line,
            getattr(response, "status", response),
            (time.perf_counter() - started) * 1000,
        )
        return response

    return coroutine_logger_tween


def _request_line(request: Any) -> str:
    # Test doubles and bare objects stand in for requests in unit tests.
    method = getattr(request, "method", None)
    return f"{method} {request.path_qs}" if method else repr(request)
