"""The bridge's access log: one line per request, whatever became of it."""

from __future__ import annotations

import logging
from typing import Any

Scope = dict[str, Any]

access_log = logging.getLogger("aiopyramid.access")


def log_environ(scope: Scope) -> dict[str, Any]:
    """What an access line needs, for a request refused before its environ."""
    client = scope.get("client") or ("-", 0)
    query = scope.get("query_string", b"").decode("latin-1")
    path = (scope.get("raw_path") or b"").decode("latin-1") or scope.get("path", "")
    return {
        "REQUEST_METHOD": scope.get("method", "GET"),
        "RAW_URI": path.split("?", 1)[0] + ("?" + query if query else ""),
        "PATH_INFO": scope.get("path", ""),
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "REMOTE_ADDR": client[0],
        "asgi.scope": scope,
    }


def log_access(
    environ: dict[str, Any],
    status: str,
    headers: list[tuple[str, str]],
    sent: int,
    seconds: float,
) -> None:
    """The access logger of ``aiopyramid.access_log = true``: one INFO line.

    ``client "METHOD target PROTOCOL" status bytes seconds`` on the
    ``aiopyramid.access`` logger.
    """
    access_log.info(
        '%s "%s %s %s" %s %d %.6f',
        environ.get("REMOTE_ADDR", "-"),
        environ.get("REQUEST_METHOD", "-"),
        environ.get("RAW_URI", "-"),
        environ.get("SERVER_PROTOCOL", "-"),
        status.split(" ", 1)[0],
        sent,
        seconds,
    )
