"""Plain HTTP/1 requests served straight from gunicorn's parser, without ASGI.

gunicorn's parser (``gunicorn_h1c``, or its Python parser) has already read
and checked the request head, applied gunicorn's limits and header policy, and
frames the body.  For a plain HTTP/1 request, :class:`DirectHTTP` then builds
the environ from the parsed request, runs the application in a pooled
greenlet on the connection's own task, and writes the response with one
``write`` for a whole small body: no ASGI scope, no message dictionaries, no
task per request, and no timer.  Websockets, HTTP/2 and the uWSGI protocol
keep going through gunicorn's ASGI code and :class:`aiopyramid.asgi.ASGIBridge`.

Every refusal of the bridge is kept, each with its access-log line:
``503`` (with ``Retry-After``) past ``worker_connections``, ``400`` for a
missing, doubled or malformed ``Host``, a path that is not UTF-8 or a name
with ``_`` under ``header_map = refuse`` (the environ builder's rules),
``413`` for a body over ``aiopyramid.max_body_size``,
``408`` for a stalled body, a logged ``500`` for a failing view or a header
with CR, LF or NUL; a client that leaves cancels its request.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

from .._access_log import line_environ
from .._environ import BadRequest, build_environ
from .._failures import report_failure
from .._greenlets import run_in_child_greenlet
from .._response import call_app, stream_async
from .._sending import PIECE
from .._task_response import uncancel
from .._wsgi_input import asgi_chunks, read_input
from ..exceptions import DISCONNECT_MESSAGE
from ._response import DirectResponse

__all__ = ["DirectHTTP"]


class DirectHTTP:
    """The part of the worker's protocol that serves plain HTTP/1 requests.

    Mixed into :class:`aiopyramid.gunicorn._protocol.Protocol` ahead of
    gunicorn's ``ASGIProtocol``, whose connection loop calls
    ``_serve_http_request`` once per request and reads the keep-alive answer
    it returns.
    """

    #: The request being served, while the application runs.
    _serving: DirectResponse | None = None
    #: Whether this connection's task was cancelled because its client left.
    _client_left = False

    async def _serve_http_request(
        self, request: Any, sockname: Any, peername: Any
    ) -> bool:
        worker = self.worker  # type: ignore[attr-defined]
        bridge = worker.asgi
        access = worker.access_log
        started = time.monotonic() if access is not None else 0.0
        response = DirectResponse(self, request)
        environ: dict[str, Any] | None = None
        bridge.active += 1
        try:
            if self._pre_request is not None:  # type: ignore[attr-defined]
                self._pre_request(worker, request)  # type: ignore[attr-defined]
            environ = self._environ(request, sockname, peername, bridge.header_map)
            await self._respond(bridge, request, environ, response)
        except BadRequest as error:
            response.refuse(400, f"Bad Request: {error}.")
        except asyncio.CancelledError:
            if not self._client_left:
                raise
            # Our own cancellation of a request whose client went away: it
            # has unwound, and there is nobody to answer.
            response.close = True
            self._client_left = False
            uncancel(asyncio.current_task())
        except Exception as error:  # a gunicorn hook, or reading the body
            if environ is None:
                environ = _line_environ(request, peername)
            report_failure(environ, error)
            if response.started:
                response.close = True
            else:
                response.refuse(500, "Internal Server Error.")
        finally:
            bridge.active -= 1
            self._serving = None
            if environ is None:
                environ = _line_environ(request, peername)
            elif environ["wsgi.input"] is not None:
                # None when the request was refused before its body (503).
                environ["wsgi.input"].close()
            if not response.started:  # nothing was answered: the client left
                response.status, response.headers = "499 Client Closed Request", []
            try:
                if access is not None:
                    seconds = time.monotonic() - started
                    access.write(response, request, environ, seconds)
                if self._post_request is not None:  # type: ignore[attr-defined]
                    self._post_request(worker, request, environ, response)  # type: ignore[attr-defined]
            except Exception:  # as gunicorn: logged, the connection goes on
                self.log.exception("Exception in post_request hook")  # type: ignore[attr-defined]
        return response.started and not response.close and response.complete

    def _environ(
        self, request: Any, sockname: Any, peername: Any, header_map: str
    ) -> dict[str, Any]:
        """The environ of gunicorn's parsed ``request``, from the one builder.

        gunicorn's parser has applied its limits already (none here).
        """
        raw = request.raw_path
        return build_environ(
            request.method,
            # Without the raw bytes, gunicorn's path is decoded: never twice.
            raw or request.path,
            request.query or "",
            request.headers_bytes,
            scheme=request.scheme,
            http_version="{}.{}".format(*request.version),
            root_path=self._root_path,  # type: ignore[attr-defined]
            server=sockname if type(sockname) is tuple else None,
            client=peername if type(peername) is tuple else None,
            encoded=bool(raw),
            header_map=header_map,
        )

    async def _respond(
        self,
        bridge: Any,
        request: Any,
        environ: dict[str, Any],
        response: DirectResponse,
    ) -> None:
        limit = bridge.max_concurrency
        if limit is not None and bridge.active > limit:
            response.refuse(503, "Service Unavailable: too many requests.")
            return
        environ["wsgi.multiprocess"] = bridge.multiprocess
        environ["wsgi.input"] = io.BytesIO()  # unless a body is read
        has_body = bool(request.content_length or request.chunked)
        if has_body and not await self._read_body(bridge, request, environ, response):
            return
        environ["webob.is_body_seekable"] = True
        self._serving = response
        try:
            result = await run_in_child_greenlet(
                call_app, bridge.app, environ, response
            )
            if type(result) is list:
                body = b"".join(result)
                if len(body) <= PIECE:  # one write, the head with it
                    response.put(body, False)
                else:  # in pieces, as the client takes them
                    await response.send_body(body, False)
            elif result is not None:
                await stream_async(result, response)
        except Exception as error:
            report_failure(environ, error)
            if response.started:
                response.close = True  # too late for a 500: cut it off
            else:
                response.refuse(500, "Internal Server Error.")

    async def _read_body(
        self,
        bridge: Any,
        request: Any,
        environ: dict[str, Any],
        response: DirectResponse,
    ) -> bool:
        """Read the body into ``wsgi.input``; ``False`` if it was refused instead.

        A body refused (``413``, ``408``) or cut off by a client that left
        ends the connection: what is left of it is never read.
        """
        chunks = asgi_chunks(self._body_receiver.receive)  # type: ignore[attr-defined]
        if await read_input(
            environ, chunks, response.refuse, bridge.max_body_size, bridge.body_timeout
        ):
            return True
        response.close = True  # (a refusal has set it already)
        return False

    def _client_gone(self) -> None:
        """The client left mid-request: cancel the request, as the bridge does."""
        task = self._task  # type: ignore[attr-defined]
        if self._serving is not None and task is not None and not task.done():
            self._client_left = True
            task.cancel(DISCONNECT_MESSAGE)  # thrown in as ClientDisconnected


def _line_environ(request: Any, peername: Any) -> dict[str, Any]:
    """What the access line of a request refused before its environ needs."""
    raw = request.raw_path
    return line_environ(
        request.method,
        raw.decode("latin-1") if raw else request.path,
        request.query or "",
        "{}.{}".format(*request.version),
        peername[0] if type(peername) is tuple else None,
    )
