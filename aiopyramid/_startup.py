"""What aiopyramid tells the user when an application starts.

Mistakes that otherwise surface as puzzling errors at the first request are
named here, once, at start-up, with the fix.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from zope.interface import Interface

log = logging.getLogger("aiopyramid")


class IIncluded(Interface):
    """Marker utility: ``config.include('aiopyramid')`` ran for this registry."""


def default_pool_size() -> int:
    """Threads in an event loop's default executor (the standard library's rule)."""
    return min(32, (os.cpu_count() or 1) + 4)


#: What runs on the pool, in each ``aiopyramid.mode``.
_ON_THE_POOL = {
    "executor": "plain views run",
    "greenlet": "plain views run in the request's greenlet (aiopyramid.mode = "
    "greenlet); views mapped with CoroutineOrExecutorMapper run",
    "thread": "each request's plain code runs (aiopyramid.mode = thread)",
}


def report_pool(max_workers: int | None, mode: str = "executor") -> None:
    """Log how many threads run plain code, and the setting that changes it."""
    what = _ON_THE_POOL[mode]
    if max_workers is None:
        log.info(
            "%s on the event loop's default executor: %d threads unless "
            "loop.set_default_executor() replaces it; set "
            "aiopyramid.executor.max_workers to choose",
            what,
            default_pool_size(),
        )
    else:
        log.info(
            "%s on %d threads (aiopyramid.executor.max_workers)", what, max_workers
        )


def check_included(wsgi_app: Any) -> bool:
    """Warn when a served Pyramid application never included aiopyramid.

    Returns whether the application is fine (or is not a Pyramid router, so
    cannot be checked).  Without the include, a coroutine view hands Pyramid
    a coroutine object, which fails at the first request with an error that
    does not mention aiopyramid.
    """
    query = getattr(getattr(wsgi_app, "registry", None), "queryUtility", None)
    if query is None or query(IIncluded) is not None:
        return True
    log.warning(
        "the application served here never ran config.include('aiopyramid'): "
        "its coroutine views will fail (a coroutine is not a response) and its "
        "plain views will hold up the event loop. Add "
        "config.include('aiopyramid') to its main(), or 'aiopyramid' to the "
        "pyramid.includes setting of its ini file."
    )
    return False
