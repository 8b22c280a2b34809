"""HTTP/2 streams paced by their connection, for the worker's protocol.

gunicorn's HTTP/2 path writes a stream's DATA frame to the connection's
transport and only then waits for the transport to drain: with a client
that reads nothing, each of a connection's 100 streams adds a frame beyond
the transport's limit, and each stream's task holds the rest of the chunk
it was given.  gunicorn has no setting for either.  So the worker bounds
them where it hands data to gunicorn: :class:`HTTP2Pacing` offers each
HTTP/2 scope the bridge's :data:`~aiopyramid._sending.READY` extension,
which says whether the connection's transport is over its limit (and
gives a future resolved once it is not), and the bridge waits on it before
it cuts and sends each piece of a body.  A stuck stream then waits holding
no bytes of its own, under the send deadline (``aiopyramid.send_timeout``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._sending import READY

__all__ = ["HTTP2Pacing"]


class HTTP2Pacing:
    """The part of the worker's protocol that paces HTTP/2 streams.

    Mixed into :class:`aiopyramid.gunicorn._protocol.Protocol` ahead of
    gunicorn's ``ASGIProtocol``, whose ``pause_writing``/``resume_writing``
    (the transport's flow control, which it forwards to its HTTP/2 writer)
    and ``_build_http2_scope`` it extends.
    """

    #: While the transport of an HTTP/2 connection is full: resolved once
    #: it is not (or the connection is gone).
    _h2_ready: asyncio.Future[None] | None = None
    # Set by gunicorn's ASGIProtocol (untyped): declared for the checker.
    _h2_writer_protocol: Any

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self._h2_writer_protocol is not None and self._h2_ready is None:
            loop = self.worker.loop  # type: ignore[attr-defined]
            self._h2_ready = loop.create_future()

    def resume_writing(self) -> None:
        super().resume_writing()  # type: ignore[misc]
        self._wake_streams()

    def _wake_streams(self) -> None:
        """The connection takes bytes again (or is gone): the streams may go on."""
        ready, self._h2_ready = self._h2_ready, None
        if ready is not None and not ready.done():
            ready.set_result(None)

    def stream_ready(self) -> asyncio.Future[None] | None:
        """``None`` while the connection takes bytes; else what to wait on."""
        return self._h2_ready

    def _build_http2_scope(self, request: Any, sockname: Any, peername: Any) -> Any:
        scope = super()._build_http2_scope(request, sockname, peername)  # type: ignore[misc]
        scope["extensions"][READY] = self.stream_ready
        return scope
