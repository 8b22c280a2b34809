"""What the bridge logs when an application fails.

One ERROR record on the ``aiopyramid`` logger names the request line and the
view that failed (the view mappers note it in the environ), with the
traceback from the application down: the bridge's own frames above it say
nothing a reader needs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

from ._types import Environ

#: A logger of its own under ``aiopyramid``: handlers there get its records, and
#: an integration that already reports failures (aiopyramid.sentry) can leave
#: it out.
log = logging.getLogger("aiopyramid.failures")

#: The environ key under which the view mappers note the view being called.
VIEW_KEY = "aiopyramid.view"

#: Source files of the bridge, whose frames lead a failure's traceback.
_BRIDGE_FILES = frozenset(
    str(Path(__file__).with_name(name))
    for name in (
        "asgi.py",
        "_asgi_http.py",
        "_asgi_websocket.py",
        "_asgi_response.py",
        "_task_response.py",
        "rsgi.py",
        "_rsgi_http.py",
        "_rsgi_response.py",
        "_rsgi_websocket.py",
        "_bridge.py",
        "_greenlets.py",
    )
)


def report_failure(environ: Environ, error: BaseException) -> None:
    """Log that the application raised ``error`` while serving ``environ``."""
    view = environ.get(VIEW_KEY)
    log.error(
        '"%s %s %s" failed in %s: %s: %s',
        environ.get("REQUEST_METHOD", "-"),
        environ.get("RAW_URI") or environ.get("PATH_INFO", "-"),
        environ.get("SERVER_PROTOCOL", "-"),
        view or "the application, outside any view",
        type(error).__name__,
        error,
        exc_info=(type(error), error, _from_application(error.__traceback__)),
    )


def _from_application(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_frame.f_code.co_filename in _BRIDGE_FILES:
        tb = tb.tb_next
    return tb
