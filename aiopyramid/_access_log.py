"""The bridge's access log: one line per request, whatever became of it."""

from __future__ import annotations

import logging
from typing import Any

Scope = dict[str, Any]

access_log = logging.getLogger("aiopyramid.access")


def line_environ(
    method: str,
    target: str,
    query: str,
    http_version: str,
    client: str | None,
) -> dict[str, Any]:
    """What an access line needs, for a request refused before its environ.

    ``target`` is the request's path (its query, if any, is cut off: it is
    ``query``); ``client`` the client's address, if known.
    """
    path = target.split("?", 1)[0]
    return {
        "REQUEST_METHOD": method,
        "RAW_URI": path + ("?" + query if query else ""),
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/" + http_version,
        "REMOTE_ADDR": client or "-",
    }


def log_environ(scope: Scope) -> dict[str, Any]:
    """:func:`line_environ` of an ASGI scope (kept as ``asgi.scope``)."""
    client = scope.get("client") or ("-", 0)
    raw = (scope.get("raw_path") or b"").decode("latin-1")
    environ = line_environ(
        scope.get("method", "GET"),
        raw or scope.get("path", ""),
        scope.get("query_string", b"").decode("latin-1"),
        scope.get("http_version", "1.1"),
        client[0],
    )
    environ["PATH_INFO"] = scope.get("path", "")
    environ["asgi.scope"] = scope
    return environ


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
