"""The HTTP path of the RSGI adapter: one granian request, one task.

:func:`serve_http` serves one ``http`` scope for an
:class:`aiopyramid.rsgi.RSGIApp`, with the settings and counters of the
:class:`~aiopyramid.asgi.ASGIBridge` it holds.  It does what the ASGI bridge
does, with the bridge's own pieces: the environ from the one builder
(:func:`environ_of_rsgi`), the body read before the application runs
(:func:`aiopyramid._wsgi_input.read_chunks`), the application in a child
greenlet of the request's task, failures reported once
(:func:`aiopyramid._failures.report_failure`), and one access line whatever
became of the request.  Refusals: ``503`` past ``max_concurrency``, ``400``
for a bad head, ``413``/``408`` for a body too large or stalled, ``500`` for
a failing application.  A client that leaves cancels its request (its code
gets :class:`~aiopyramid.exceptions.ClientDisconnected`; the access line
says ``499``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Any

from ._access_log import line_environ
from ._environ import BadRequest, Limits, build_environ
from ._greenlets import run_in_child_greenlet
from ._response import FileWrapper, call_app, stream_async
from ._rsgi_response import RSGIResponse, RSGIWatch
from ._types import Environ
from ._watchdog import ensure_watched
from ._wsgi_input import declared_length, has_body, read_input

__all__ = ["environ_of_rsgi", "line_environ_of_rsgi", "serve_http"]

log = logging.getLogger("aiopyramid.rsgi")

#: RSGI's ``http_version`` as the environ's: granian says ``"1"`` for HTTP/1.0.
_VERSIONS = {"1": "1.0", "1.0": "1.0", "1.1": "1.1", "2": "2", "3": "3"}


#: Addresses seen before, as pairs: a connection's requests repeat its
#: client's address, and every request the server's.
_addresses: dict[str, tuple[str, int] | None] = {}


def _address(text: str | None) -> tuple[str, int] | None:
    """An RSGI address (``"host:port"``, ``"[v6]:port"``) as a pair."""
    if not text:
        return None
    pair = _addresses.get(text)
    if pair is None:
        host, _, port = text.rpartition(":")
        pair = (host.strip("[]"), int(port)) if port.isdigit() else None
        if len(_addresses) >= 1024:  # bounded: one entry per client port
            _addresses.clear()
        _addresses[text] = pair
    return pair


def environ_of_rsgi(
    scope: Any,
    root_path: str = "",
    limits: Limits | None = None,
    header_map: str = "drop",
) -> Environ:
    """:func:`~aiopyramid._environ.build_environ` for an RSGI scope.

    granian gives the path percent-decoded already (so never decoded
    again), the headers as text with lower-case names, and an absolute-form
    target's authority apart (it wins over ``Host``, as RFC 9112 says).
    ``root_path`` is where the application is mounted: RSGI has no word
    for it.
    """
    return build_environ(
        scope.method,
        scope.path,
        scope.query_string,
        scope.headers.items(),
        scheme=scope.scheme,
        http_version=_VERSIONS.get(scope.http_version, scope.http_version),
        root_path=root_path,
        server=_address(scope.server),
        client=_address(scope.client),
        # An absolute-form target's (HTTP/1) or HTTP/2's :authority.
        authority=scope.authority,
        encoded=False,
        limits=limits,
        header_map=header_map,
    )


def line_environ_of_rsgi(scope: Any) -> Environ:
    """What the access line of a request refused before its environ needs."""
    client = _address(scope.client)
    return line_environ(
        scope.method,
        scope.path,
        scope.query_string,
        _VERSIONS.get(scope.http_version, scope.http_version),
        client[0] if client is not None else None,
    )


class _Body:
    """The body of a request through granian's RSGI iterator, chunk by chunk.

    granian (2.8.9) ends the iterator the same way whether the body is
    complete or its client left before the end (an empty chunk, then the
    end): a body shorter than its ``Content-Length`` is a client that left.
    A chunked body cut off cannot be told from a complete one with
    trailers, which granian ends the same way (docs/security.rst).
    """

    __slots__ = ("chunks", "expected", "protocol", "size")

    def __init__(self, protocol: Any, environ: Environ) -> None:
        self.protocol = protocol
        #: granian's iterator, once the body is read (not before a refusal).
        self.chunks: Any = None
        self.expected = declared_length(environ)
        self.size = 0

    async def __call__(self) -> tuple[bytes, bool] | None:
        chunks = self.chunks
        if chunks is None:
            chunks = self.chunks = self.protocol.__aiter__()
        try:
            chunk = await chunks.__anext__()
            if chunk:
                self.size += len(chunk)
                return chunk, True
        except StopAsyncIteration:
            pass
        except RuntimeError:
            # granian's RSGIProtocolClosed (a RuntimeError): the client is
            # gone.  Caught by its base so that the adapter needs no import
            # of granian's private extension module.
            return None
        if self.expected is not None and self.size < self.expected:
            return None
        return b"", False


async def serve_http(bridge: Any, root_path: str, scope: Any, protocol: Any) -> None:
    """Serve one RSGI ``http`` scope with ``bridge``'s application and settings."""
    response = RSGIResponse(protocol, bridge.senders, asyncio.current_task())
    logger = bridge.access_logger
    bridge.active += 1
    if logger is None:  # no line to write: nothing to time or to keep
        try:
            await _serve(bridge, root_path, scope, protocol, response)
        finally:
            bridge.active -= 1
        return
    started_at = time.monotonic()
    environ: Environ | None = None
    ended = "499 Client Closed Request"  # unless something else is known
    try:
        environ = await _serve(bridge, root_path, scope, protocol, response)
    except Exception:
        ended = "500 Internal Server Error"
        raise
    finally:
        bridge.active -= 1
        # Every request gets its line: refusals, errors and requests whose
        # client left included.
        logger(
            environ if environ is not None else line_environ_of_rsgi(scope),
            (response.status if response.started else None) or ended,
            response.headers if response.started else [],
            response.sent,
            time.monotonic() - started_at,
        )


async def _serve(
    bridge: Any, root_path: str, scope: Any, protocol: Any, response: RSGIResponse
) -> Environ | None:
    """Serve one request; return its environ (``None`` if refused early)."""
    limit = bridge.max_concurrency
    if limit is not None and bridge.active > limit:
        response.refuse(503, "Service Unavailable: too many requests.")
        return None
    try:
        environ = environ_of_rsgi(scope, root_path, bridge.limits, bridge.header_map)
    except BadRequest as error:
        response.refuse(400, f"Bad Request: {error}.")
        return None
    environ["wsgi.multiprocess"] = bridge.multiprocess
    environ["wsgi.file_wrapper"] = FileWrapper
    if not has_body(environ):
        # Most requests: nothing to wait for, so no coroutine to await.
        environ["wsgi.input"] = io.BytesIO()
    elif not await read_input(
        environ,
        _Body(protocol, environ),
        response.refuse,
        bridge.max_body_size,
        bridge.body_timeout,
    ):
        return environ  # refused, or the client left before sending it all
    # Read already and rewound: WebOb need not copy it again to seek.
    environ["webob.is_body_seekable"] = True
    task = response.task
    loop = task.get_loop() if task is not None else None
    # The loop is watched from __rsgi_init__; on a loop already known, this
    # is a set lookup (and covers a server that never calls it).
    ensure_watched(bridge.registry, loop)
    watch = RSGIWatch(task, protocol)
    watch.start(loop)
    try:
        result = await run_in_child_greenlet(call_app, bridge.app, environ, response)
        if type(result) is list:
            if response.transport is None and not response.discard:
                # Pyramid's body: out with its head in one call, no await.
                response.send_whole(b"".join(result))
            else:  # after write(): the end of a stream
                await response.send_body(b"".join(result), False)
        elif type(result) is FileWrapper:
            await _send_file(result, response)
        elif result is not None:
            await stream_async(result, response)
    except Exception as error:
        # Answered 500 (unless the client is gone); re-raised once the
        # response has started, too late for a 500: granian cuts it off.
        if not await response.answer_failure(environ, error, log):
            raise
    except asyncio.CancelledError:
        # Re-raised unless aiopyramid cancelled the request: its client went
        # away, or stopped reading, and there is nobody to answer.
        if not response.withdraw_cancel(watch.disconnected):
            raise
    finally:
        watch.stop()
        environ["wsgi.input"].close()
    return environ


async def _send_file(wrapped: FileWrapper, response: RSGIResponse) -> None:
    """Hand a wrapped file to granian whole, or send it as chunks."""
    try:
        path = wrapped.path()
        if path is not None:
            response.send_file(path)
            return
        for chunk in wrapped:
            if chunk:
                await response.send_body(chunk, True)
        await response.send_body(b"", False)
    finally:
        wrapped.close()
