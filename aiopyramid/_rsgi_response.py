"""The response half of the RSGI adapter: the response as granian's calls.

One :class:`RSGIResponse` per request (on
:class:`aiopyramid._task_response.TaskResponse`, shared with the ASGI
bridge, and its WSGI side :class:`aiopyramid._response.WSGIResponse`, shared
with every server).  A whole body goes out in one
``protocol.response_bytes`` call with its head; a body produced in chunks
goes through ``protocol.response_stream``, a piece at a time under the send
deadline (:mod:`aiopyramid._sending`); a file wrapped by
``wsgi.file_wrapper`` goes to ``protocol.response_file``.  The adapter's
own refusals (``400``, ``408``, ``413``, ``503``) and the logged
``500`` that replaces a head that could split the response are sent the
same way.  :class:`RSGIWatch` cancels a request whose client went away.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._asgi_response import Watch
from ._sending import PIECE, Senders, pieces
from ._task_response import TaskResponse

__all__ = ["RSGIResponse", "RSGIWatch"]


class RSGIResponse(TaskResponse):
    """A response sent through an RSGI ``protocol`` (granian's).

    With ``senders``, each streamed piece is handed over under their
    deadline, without holding a request slot; ``task`` is the request's,
    cancelled when the deadline passes (:attr:`timed_out` then says so).
    What the transport raises is kept in :attr:`lost`: the client is gone.
    """

    __slots__ = ("protocol", "transport")

    def __init__(
        self,
        protocol: Any,
        senders: Senders | None = None,
        task: asyncio.Task[Any] | None = None,
    ) -> None:
        TaskResponse.__init__(self, senders, task)  # (not super(): see there)
        self.protocol = protocol
        #: The stream of a body sent in chunks, once its head is out.
        self.transport: Any = None

    def _head(self) -> tuple[int, list[tuple[str, str]]] | None:
        """The status and headers to send; ``None`` once replaced by a ``500``."""
        if not self.head_is_safe():
            self.refuse(500, "Internal Server Error.")
            self.discard = True
            return None
        assert self.status is not None  # checked by head_is_safe
        self.started = True
        return int(self.status[:3]), self.headers

    async def send_body(self, data: bytes, more: bool) -> None:
        """Send one chunk of the body (with the head first, if not yet sent).

        A last chunk with nothing sent before it is the whole body: one
        call.  Otherwise the response becomes a stream.
        """
        if self.discard:
            return
        transport = self.transport
        if transport is None:
            if not more:
                self.send_whole(data)
                return
            head = self._head()
            if head is None:
                return
            transport = self.transport = self.protocol.response_stream(*head)
        self.sent += len(data)
        if data:
            for piece in pieces(data, PIECE):
                await self._put(transport, piece)
        if not more:
            self.discard = True  # the stream ends when the request's task does

    def send_whole(self, data: bytes) -> None:
        """Send ``data`` as the whole body, with the head: one call, no wait."""
        head = self._head()
        if head is not None:
            self.sent = len(data)
            self.discard = True  # all of it is out
            self.protocol.response_bytes(head[0], head[1], data)

    async def _put(self, transport: Any, piece: bytes) -> None:
        """Hand ``piece`` to the server, under the send deadline."""
        with self:  # no slot held, under the send deadline (TaskResponse)
            await transport.send_bytes(piece)

    def send_file(self, path: str) -> bool:
        """Send the file at ``path`` as the whole body; ``False`` if replaced."""
        head = self._head()
        if head is None:
            return False
        self.discard = True
        self.protocol.response_file(head[0], head[1], path)
        return True

    def refuse(self, status: int, text: str) -> None:
        """Send a whole plain-text response of the adapter's own."""
        body = self._refusal(status, text)
        self.started = True
        self.sent = len(body)
        self.discard = True
        self.protocol.response_bytes(int(self.status[:3]), self.headers, body)  # type: ignore[index]


class RSGIWatch(Watch):
    """:class:`~aiopyramid._asgi_response.Watch` on an RSGI ``protocol``."""

    __slots__ = ()

    async def gone(self) -> None:
        """Return once granian says the client has gone."""
        # Awaited in the watcher's own task: cancelling that task when the
        # request ends cancels the wait too (RSGI: cancel it once answered).
        await self.peer.client_disconnect()
