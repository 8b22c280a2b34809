"""Building a PEP 3333 environ from what every server gives about a request.

This is the only place in aiopyramid that turns a request into an environ.
:func:`build_environ` takes the parts every server parses (method, target,
query, headers, addresses, scheme, root path, HTTP version); each server
adapter maps its own request into it once: the ASGI bridge through
:func:`environ_of_scope`, the gunicorn worker's HTTP/1 path from gunicorn's
parsed request, the RSGI adapter from granian's scope object.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from ._types import Environ, Scope
from .exceptions import AiopyramidError

# Headers that PEP 3333 names without the HTTP_ prefix.
_UNPREFIXED = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
#: ``wsgi.url_scheme`` of a websocket's scheme.
_URL_SCHEMES = {"ws": "http", "wss": "https"}
# Header names seen before, mapped to their environ key: most requests repeat
# the same few dozen names, and building the key is a measurable share of
# the environ's cost.
_keys: dict[bytes | str, str] = {}
_ips: dict[str, bool] = {}
_hosts: dict[str, bool] = {}
#: An absolute-form request target: ``scheme://authority`` and the path.
_ABSOLUTE = re.compile(
    rb"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<authority>[^/?#]*)(?P<path>/.*)?"
)
#: RFC 3986's ``host [ ":" port ]``: an IP literal in brackets, or a
#: registered name (IPv4 addresses are names too); no user, path or space.
_HOST = re.compile(
    r"""(?:\[(?:(?P<ipv6>[0-9A-Fa-f:.]+)|v[0-9A-Fa-f]+\.[\w\-.~!$&'()*+,;=:]+)\]
       |(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)
       (?::[0-9]*)?""",
    re.VERBOSE | re.ASCII,
)


@dataclass(frozen=True)
class Limits:
    """Limits on the request head, as gunicorn's settings of the same names.

    A request over a limit is answered ``400 Bad Request`` before the
    application is called.  Zero means no limit.
    """

    #: Longest request line (method, target and protocol), in bytes.
    request_line: int = 4094
    #: Most header fields.
    request_fields: int = 100
    #: Longest header field (name and value), in bytes.
    request_field_size: int = 8190


class BadRequest(Exception):
    """The request cannot be served as sent (answered 400); the message says why."""


class LimitExceeded(BadRequest, AiopyramidError):
    """The request head breaks one of the :class:`Limits`; the message says which."""


#: What to do with header names containing ``_``, as gunicorn's ``header_map``:
#: ``"drop"`` them (the default), ``"refuse"`` the request, or map them
#: (``"dangerous"``: ``X_Forwarded_For`` then lands on the same key as
#: ``X-Forwarded-For``, which a proxy may have vouched for).
HEADER_MAPS = ("drop", "refuse", "dangerous")


def _text(name: bytes | str) -> str:
    """A header name or value as latin-1 text."""
    return name if isinstance(name, str) else name.decode("latin-1")


def _key(name: bytes | str) -> str:
    """The environ key of header ``name``; ``""`` for a name with ``_``.

    Names come as bytes (ASGI, gunicorn) or text (RSGI): both are cached.
    """
    key = _keys.get(name)
    if key is None:
        text = _text(name)
        if "_" in text:
            key = ""
        else:
            key = _UNPREFIXED.get(text) or "HTTP_" + text.upper().replace("-", "_")
        if len(_keys) < 1024:  # bounded: names are chosen by clients
            _keys[name] = key
    return key


def _underscored(name: bytes | str, header_map: str) -> str:
    """The key of a header name with ``_`` under ``header_map`` (``""``: drop)."""
    if header_map == "refuse":
        raise BadRequest(f"Header name {_text(name)!r} contains '_'")
    if header_map == "dangerous":
        return "HTTP_" + _text(name).upper().replace("-", "_")
    return ""


def _is_ip(host: str) -> bool:
    """Whether ``host`` is an IP address (cached: clients repeat)."""
    known = _ips.get(host)
    if known is None:
        try:
            ipaddress.ip_address(host)
            known = True
        except ValueError:
            known = False
        if len(_ips) < 1024:  # bounded: forwarded values are chosen by clients
            _ips[host] = known
    return known


def _paths(
    target: bytes | str, root_path: str, encoded: bool
) -> tuple[str, str, bytes, str | None]:
    """SCRIPT_NAME, PATH_INFO (latin-1 text of raw bytes), the raw target, and
    the authority of an absolute-form target (``None`` for origin-form).

    ``target`` is the path as sent (percent-encoded, ``encoded``) or as the
    server decoded it (text, never decoded twice).  Raises
    :class:`BadRequest` for a target that is neither origin- nor
    absolute-form, and for a path that is not UTF-8 once percent-decoded
    (Pyramid could not route it).
    """
    if isinstance(target, str):
        raw = target.encode("utf-8")
    else:
        raw = target.split(b"?", 1)[0] if b"?" in target else target
    path_bytes, authority = raw, None
    if not raw.startswith(b"/") and raw != b"*":
        path_bytes, authority = _absolute_form(raw)
    if encoded and b"%" in path_bytes:
        path_bytes = unquote_to_bytes(path_bytes)
    path = path_bytes.decode("latin-1")
    if not path.isascii():
        try:
            path_bytes.decode("utf-8")
        except UnicodeDecodeError:
            # Pyramid would fail on it with a logged 500 (URLDecodeError):
            # it is the client's mistake, and said so.
            raise BadRequest(
                "The request path is not UTF-8 once percent-decoded"
            ) from None
    script = root_path.encode("utf-8").decode("latin-1") if root_path else ""
    # ASGI and RSGI servers include the root path in the path; WSGI keeps
    # them apart.
    if script and (path == script or path.startswith(script + "/")):
        path = path[len(script) :]
    return script, path, raw, authority


def _absolute_form(raw: bytes) -> tuple[bytes, str]:
    """The path and the authority of an absolute-form target (RFC 9112 3.2.2)."""
    match = _ABSOLUTE.fullmatch(raw)
    if match is None or match["scheme"].decode().lower() not in _DEFAULT_PORTS:
        raise BadRequest("The request target is neither a path nor an http URL")
    return match["path"] or b"/", match["authority"].decode("latin-1")


def _valid_host(host: str) -> bool:
    """Whether ``host`` is RFC 3986's ``host [ ":" port ]`` (cached: clients repeat)."""
    known = _hosts.get(host)
    if known is None:
        match = _HOST.fullmatch(host)
        known = match is not None
        if known and match is not None and match["ipv6"] is not None:
            try:
                ipaddress.IPv6Address(match["ipv6"])
            except ValueError:
                known = False
        if len(_hosts) < 1024:  # bounded: Host values are chosen by clients
            _hosts[host] = known
    return known


def build_environ(
    method: str,
    target: bytes | str,
    query: bytes | str,
    headers: Collection[tuple[bytes | str, bytes | str]],
    *,
    scheme: str = "http",
    http_version: str = "1.1",
    root_path: str = "",
    server: tuple[str, int | None] | None = None,
    client: tuple[str, int] | None = None,
    authority: str | None = None,
    encoded: bool = True,
    body: Any = None,
    limits: Limits | None = None,
    header_map: str = "drop",
) -> Environ:
    """Return the WSGI environ of one request, with ``body`` as ``wsgi.input``.

    Every server adapter maps its own request into these arguments once:
    ``method``; ``target``, the request target's path as sent (bytes,
    percent-encoded; a query after ``?`` is ignored) or as the server
    decoded it (``encoded=False``: never decoded twice); ``query``, the raw
    query string; ``headers``, ``(name, value)`` pairs with lower-case names,
    as bytes or as latin-1 text; ``scheme`` (``ws``/``wss`` count as
    ``http``/``https``); ``http_version`` (``"1.1"``, ``"2"``...);
    ``root_path``, where the application is mounted (``SCRIPT_NAME``, taken
    off the path when the path starts with it); ``server`` and ``client``,
    ``(host, port)`` pairs (``server`` ``None`` or with a port that is not a
    number: a unix socket); ``authority``, the request's authority where the
    server parsed it apart from the target (RSGI: an absolute-form target's,
    or HTTP/2's ``:authority``).

    Repeated headers are joined with ``","`` (``Cookie`` with ``"; "``);
    ``Connection`` and ``Upgrade`` are kept, so a websocket upgrade is seen by
    Pyramid as a ``GET`` with its upgrade headers.  Header names with ``_``
    are handled as ``header_map`` says (:data:`HEADER_MAPS`).  The client
    address becomes ``REMOTE_ADDR`` only if it is an IP address (a proxy's
    forwarded value may be anything).  An absolute-form target
    (``GET http://example.com/x``) gives its path to ``PATH_INFO`` and its
    authority to ``HTTP_HOST`` (RFC 9112 section 3.2.2).  Raises
    :class:`LimitExceeded` when the head breaks ``limits``, and
    :class:`BadRequest` for two ``Host`` headers, none in an HTTP/1.1
    request, one that is not ``host[:port]`` (RFC 9112 section 3.2, RFC
    3986), or a path that is not UTF-8 once percent-decoded.
    """
    script_name, path_info, raw_path, in_target = _paths(target, root_path, encoded)
    if in_target is not None:
        authority = in_target
    if not isinstance(query, str):
        query = query.decode("latin-1")
    url_scheme = _URL_SCHEMES.get(scheme, scheme)
    protocol = "HTTP/" + http_version
    if limits is not None and limits.request_line:
        line = len(method) + len(raw_path) + len(query) + len(protocol) + 3
        if line > limits.request_line:
            raise LimitExceeded(
                f"Request line is {line} bytes long, more than {limits.request_line}"
            )
    raw_uri = raw_path.decode("latin-1")
    environ: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "RAW_URI": raw_uri + "?" + query if query else raw_uri,
        "SERVER_PROTOCOL": protocol,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if limits is not None and 0 < limits.request_fields < len(headers):
        raise LimitExceeded(
            f"Request has {len(headers)} header fields, more than "
            f"{limits.request_fields}"
        )
    field_limit = limits.request_field_size if limits is not None else 0
    for name, value in headers:
        if field_limit and len(name) + len(value) + 2 > field_limit:
            raise LimitExceeded(
                f"Request header field {_text(name)!r} is longer than "
                f"{field_limit} bytes"
            )
        key = _key(name)
        if not key:
            # Headers spelt with "_" would share a key with their "-" twin
            # (which a proxy may have vouched for): dropped, as gunicorn and
            # waitress do, unless header_map says otherwise.
            key = _underscored(name, header_map)
            if not key:
                continue
        text = value if isinstance(value, str) else value.decode("latin-1")
        old = environ.get(key)
        if old is not None:
            if key == "HTTP_HOST":
                raise BadRequest("Request has more than one Host header")
            text = old + ("; " if key == "HTTP_COOKIE" else ",") + text
        environ[key] = text
    if authority is not None:  # RFC 9112 section 3.2.2: the target's wins
        environ["HTTP_HOST"] = authority
    host = environ.get("HTTP_HOST")
    if host is None:
        if protocol == "HTTP/1.1":
            raise BadRequest("An HTTP/1.1 request needs a Host header")
    elif not _valid_host(host):
        raise BadRequest(
            "The host of the request (its Host header, or its target's "
            "authority) is not a host name or address[:port]"
        )
    # gunicorn 27 describes a unix socket as the first two characters of
    # its path ("/", "t"): only a numeric port means a TCP address.
    if server and type(server[1]) is int:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = server[0], str(server[1])
    else:  # a unix socket: take the name the client used
        host = environ.get("HTTP_HOST", "localhost")
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            name, port = host, _DEFAULT_PORTS.get(url_scheme, "80")
        environ["SERVER_NAME"], environ["SERVER_PORT"] = name, port
    if client and _is_ip(client[0]):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    return environ


def environ_of_scope(
    scope: Scope,
    body: Any = None,
    limits: Limits | None = None,
    header_map: str = "drop",
) -> Environ:
    """:func:`build_environ` for an ASGI ``http`` or ``websocket`` scope.

    The scope is kept in the environ as ``asgi.scope``.
    """
    raw = scope.get("raw_path")
    websocket = scope["type"] == "websocket"
    environ = build_environ(
        scope.get("method", "GET"),
        # Without raw_path, the server's path is decoded already: never twice.
        raw or scope["path"],
        scope.get("query_string", b""),
        scope["headers"],
        scheme=scope.get("scheme") or ("ws" if websocket else "http"),
        http_version=scope.get("http_version", "1.1"),
        root_path=scope.get("root_path", ""),
        server=scope.get("server"),
        client=scope.get("client"),
        encoded=bool(raw),
        body=body,
        limits=limits,
        header_map=header_map,
    )
    environ["asgi.scope"] = scope
    return environ
