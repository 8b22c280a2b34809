"""Building a PEP 3333 environ from an ASGI ``http`` or ``websocket`` scope.

This is the only place in aiopyramid that turns a connection into an environ
(the gunicorn worker serves the ASGI bridge, so it comes through here too).
"""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from .exceptions import AiopyramidError

# Headers that PEP 3333 names without the HTTP_ prefix.
_UNPREFIXED = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
# Header names seen before, mapped to their environ key: most requests repeat
# the same few dozen names, and building the key is a measurable share of
# the environ's cost.
_keys: dict[bytes, str] = {}
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


def _key(name: bytes) -> str:
    """The environ key of header ``name``; ``""`` for a name with ``_``."""
    key = _keys.get(name)
    if key is None:
        if b"_" in name:
            key = ""
        else:
            key = _UNPREFIXED.get(name) or "HTTP_" + name.decode(
                "latin-1"
            ).upper().replace("-", "_")
        if len(_keys) < 512:  # bounded: names are chosen by clients
            _keys[name] = key
    return key


def _underscored(name: bytes, header_map: str) -> str:
    """The key of a header name with ``_`` under ``header_map`` (``""``: drop)."""
    if header_map == "refuse":
        raise BadRequest(f"Header name {name.decode('latin-1')!r} contains '_'")
    if header_map == "dangerous":
        return "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
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


def _paths(scope: dict[str, Any]) -> tuple[str, str, bytes, str | None]:
    """SCRIPT_NAME, PATH_INFO (latin-1 text of raw bytes), the raw target, and
    the authority of an absolute-form target (``None`` for origin-form).

    Raises :class:`BadRequest` for a target that is neither, and for a path
    that is not UTF-8 once percent-decoded (Pyramid could not route it).
    """
    root_path: str = scope.get("root_path", "")
    raw = scope.get("raw_path")
    # Without raw_path, the server's path is decoded already: never twice.
    encoded = bool(raw)
    raw = raw.split(b"?", 1)[0] if raw else scope["path"].encode("utf-8")
    target, authority = raw, None
    if not raw.startswith(b"/") and raw != b"*":
        target, authority = _absolute_form(raw)
    if encoded and b"%" in target:
        target = unquote_to_bytes(target)
    path = target.decode("latin-1")
    if not path.isascii():
        try:
            target.decode("utf-8")
        except UnicodeDecodeError:
            # Pyramid would fail on it with a logged 500 (URLDecodeError):
            # it is the client's mistake, and said so.
            raise BadRequest(
                "The request path is not UTF-8 once percent-decoded"
            ) from None
    script = root_path.encode("utf-8").decode("latin-1")
    # ASGI servers include root_path in path; WSGI keeps them apart.
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
    scope: dict[str, Any],
    body: Any,
    limits: Limits | None = None,
    header_map: str = "drop",
) -> dict[str, Any]:
    """Return the WSGI environ for ``scope`` with ``body`` as ``wsgi.input``.

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
    script_name, path_info, raw_path, authority = _paths(scope)
    query: bytes = scope.get("query_string", b"")
    kind = scope["type"]
    scheme = scope.get("scheme") or ("ws" if kind == "websocket" else "http")
    url_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    protocol = "HTTP/" + scope.get("http_version", "1.1")
    method = scope.get("method", "GET")
    if limits is not None and limits.request_line:
        line = len(method) + len(raw_path) + len(query) + len(protocol) + 3
        if line > limits.request_line:
            raise LimitExceeded(
                f"Request line is {line} bytes long, more than {limits.request_line}"
            )
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": raw_path.decode("latin-1") + ("?" + query.decode("latin-1"))
        if query
        else raw_path.decode("latin-1"),
        "SERVER_PROTOCOL": protocol,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "asgi.scope": scope,
    }
    headers = scope["headers"]
    if limits is not None and 0 < limits.request_fields < len(headers):
        raise LimitExceeded(
            f"Request has {len(headers)} header fields, more than "
            f"{limits.request_fields}"
        )
    field_limit = limits.request_field_size if limits is not None else 0
    for name, value in headers:
        if field_limit and len(name) + len(value) + 2 > field_limit:
            raise LimitExceeded(
                f"Request header field {name.decode('latin-1')!r} is longer than "
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
        text = value.decode("latin-1")
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
    server = scope.get("server")
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
    client = scope.get("client")
    if client and _is_ip(client[0]):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    return environ
