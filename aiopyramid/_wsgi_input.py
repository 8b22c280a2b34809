"""``wsgi.input`` for every server adapter: the request body, read before the app runs.

The body is read on the loop, as the server delivers it, before the
application is called: WSGI code (a coroutine view included, which runs on the
loop and cannot wait) then reads ``request.body`` like any file.  Small bodies
stay in memory; past ``spool_size`` bytes they go to an anonymous temporary
file, so a large upload costs disk, not memory.  A declared
``Content-Length`` over the limit is refused before the client sends the body
(a client that sent ``Expect: 100-continue`` never gets its ``100``); a
chunked body is refused as soon as it grows past the limit.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from typing import IO, Any

from .exceptions import AiopyramidError

Receive = Callable[[], Awaitable[dict[str, Any]]]

#: Bodies larger than this many bytes are kept in a temporary file.
SPOOL_SIZE = 1024 * 1024


class BodyTooLarge(AiopyramidError):
    """The request body is larger than the configured maximum (answered 413)."""


class BodyTimeout(Exception):
    """The client stopped sending its body for too long (answered 408)."""


#: What a server's body reader gives: the next chunk and whether more follow,
#: or ``None`` when the client left before the end.
Chunks = Callable[[], Awaitable["tuple[bytes, bool] | None"]]


async def read_body(
    receive: Receive,
    limit: int | None,
    spool_size: int = SPOOL_SIZE,
    timeout: float | None = None,
) -> tuple[IO[bytes], int] | None:
    """:func:`read_chunks` from an ASGI ``receive`` callable."""

    async def chunk() -> tuple[bytes, bool] | None:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        return message.get("body", b""), bool(message.get("more_body", False))

    return await read_chunks(chunk, limit, spool_size, timeout)


async def read_chunks(
    chunks: Chunks,
    limit: int | None,
    spool_size: int = SPOOL_SIZE,
    timeout: float | None = None,
) -> tuple[IO[bytes], int] | None:
    """Read the whole body; return the file (at its start) and its size.

    ``chunks`` is called for each piece of it, as the server delivers them
    (the ASGI bridge's ``receive``, granian's RSGI body iterator).  Returns
    ``None`` if the client disconnected first.  Raises :class:`BodyTooLarge`
    past ``limit`` bytes (``None``: no limit) and :class:`BodyTimeout` when
    no part of the body arrives for ``timeout`` seconds (``None``: wait for
    ever).
    """
    # Past the spool size the body moves to disk: memory stays bounded
    # whatever the upload's size.  (Writing to the temporary file lands in
    # the page cache: a short stall of the loop, paid only by large bodies.)
    target: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
        max_size=spool_size, prefix="aiopyramid-body-"
    )
    size = 0
    more = True
    while more:
        try:
            # A stalled body would hold its connection, its spool and the
            # request for ever: bounded in time between two chunks.
            piece = await asyncio.wait_for(chunks(), timeout)
        except asyncio.TimeoutError:
            target.close()
            raise BodyTimeout(timeout) from None
        if piece is None:
            target.close()
            return None
        chunk, more = piece
        size += len(chunk)
        if limit is not None and size > limit:
            target.close()
            raise BodyTooLarge(size)
        target.write(chunk)
    target.seek(0)
    return target, size


def make_seekable(request: Any) -> None:
    """Make ``request.body`` readable from anywhere: rewound, or read now.

    Called in the request's greenlet before its plain code moves to a
    thread or its coroutine view runs on the loop.
    """
    # aiopyramid's servers read the body before the application runs and say
    # so in the environ: rewinding it is all WebOb would do (and cheaper
    # through the file itself).  Test doubles (pyramid.testing.DummyRequest)
    # have no body to read.
    environ = request.environ
    if environ.get("webob.is_body_seekable"):
        environ["wsgi.input"].seek(0)
        return
    make_body_seekable = getattr(request, "make_body_seekable", None)
    if make_body_seekable is not None:
        make_body_seekable()
