"""``wsgi.input`` for every server adapter: the request body, read before the app runs.

The body is read on the loop, as the server delivers it, before the
application is called: WSGI code (a coroutine view included, which runs on the
loop and cannot wait) then reads ``request.body`` like any file.  Small bodies
stay in memory; past ``spool_size`` bytes they go to an anonymous temporary
file, so a large upload costs disk, not memory.  A declared
``Content-Length`` over the limit is refused before the client sends the body
(a client that sent ``Expect: 100-continue`` never gets its ``100``); a
chunked body is refused as soon as it grows past the limit.

:func:`read_input` is what every server adapter (the gunicorn worker, the
ASGI bridge, the RSGI adapter) does with a request's body
(:func:`has_body` says whether the bridges have one): read it into the
environ, or refuse it (``413``, ``408``) through the adapter's own
``refuse``.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import Awaitable, Callable
from typing import IO, Any

from ._types import Environ
from .exceptions import AiopyramidError

Receive = Callable[[], Awaitable[dict[str, Any]]]

#: How a server adapter answers with a refusal of its own (the status and a
#: plain text): at once (``None``), or through an awaitable to await (the
#: ASGI bridge's, whose ``send`` is a coroutine).
Refuse = Callable[[int, str], "Awaitable[None] | None"]

#: Bodies larger than this many bytes are kept in a temporary file.
SPOOL_SIZE = 1024 * 1024


class BodyTooLarge(AiopyramidError):
    """The request body is larger than the configured maximum (answered 413)."""


class BodyTimeout(Exception):
    """The client stopped sending its body for too long (answered 408)."""


#: The answers to a body over the limit, and to one that stalled.
_TOO_LARGE = (413, "Request Entity Too Large.")
_STALLED = (408, "Request Timeout: the body stalled.")

#: What a server's body reader gives: the next chunk and whether more follow,
#: or ``None`` when the client left before the end.
Chunks = Callable[[], Awaitable["tuple[bytes, bool] | None"]]


def asgi_chunks(receive: Receive) -> Chunks:
    """The body's pieces from an ASGI ``receive`` callable, as :data:`Chunks`."""

    async def chunk() -> tuple[bytes, bool] | None:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        return message.get("body", b""), bool(message.get("more_body", False))

    return chunk


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


def declared_length(environ: Environ) -> int | None:
    """The body's length as its ``Content-Length`` says; ``None`` without one."""
    declared = environ.get("CONTENT_LENGTH")
    return int(declared) if declared is not None and declared.isdigit() else None


def has_body(environ: Environ) -> bool:
    """Whether the request of ``environ`` has a body to read."""
    declared = environ.get("CONTENT_LENGTH")
    if declared is not None:
        return bool(declared != "0")
    # HTTP/2 and 3 may send a body with neither header.
    return "HTTP_TRANSFER_ENCODING" in environ or (
        environ["SERVER_PROTOCOL"] not in ("HTTP/1.0", "HTTP/1.1")
        and environ["REQUEST_METHOD"] not in ("GET", "HEAD", "OPTIONS")
    )


async def read_input(
    environ: Environ,
    chunks: Chunks,
    refuse: Refuse,
    limit: int | None,
    timeout: float | None,
) -> bool:
    """Read the request's body into ``environ``; ``False`` if it is not there.

    The body (``chunks``, as :func:`read_chunks` takes them) becomes
    ``wsgi.input`` and its size ``CONTENT_LENGTH``.  Not read, it is
    refused through ``refuse``: ``413`` past ``limit`` bytes, declared or
    sent (``None``: no limit), ``408`` when it stalls for ``timeout``
    seconds; or its client left before the end, and nobody is answered.
    ``wsgi.input`` is then empty.
    """
    body = None
    refusal: tuple[int, str] | None = None
    length = declared_length(environ)
    if limit is not None and length is not None and length > limit:
        # Refused before the body is sent: a client that announced it would
        # send too much is not made to send it first.
        refusal = _TOO_LARGE
    else:
        try:
            body = await read_chunks(chunks, limit, timeout=timeout)
        except BodyTooLarge:
            refusal = _TOO_LARGE
        except BodyTimeout:
            refusal = _STALLED
    if refusal is not None:
        refusing = refuse(*refusal)
        if refusing is not None:
            await refusing
    if body is None:  # refused, or the client left before sending it all
        environ["wsgi.input"] = io.BytesIO()
        return False
    environ["wsgi.input"], size = body
    environ["CONTENT_LENGTH"] = str(size)
    return True


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
