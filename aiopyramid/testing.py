"""Test applications with coroutine views from ordinary synchronous tests.

WebTest (and any other WSGI test client) calls an application as a plain
function, with no event loop running.  :class:`SynchronousApp` gives each
call the loop and the child greenlet that a server would::

    from webtest import TestApp
    from aiopyramid.testing import SynchronousApp

    def test_home():
        with SynchronousApp(config.make_wsgi_app()) as app:
            assert TestApp(app).get('/').status_code == 200
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from ._greenlets import run_in_child_greenlet
from ._types import Environ, StartResponse, WSGIApp
from .exceptions import ScopeError

__all__ = ["SynchronousApp"]


class SynchronousApp:
    """A WSGI application that runs ``app`` on an event loop, one call at a time.

    Each call runs ``app`` in a request greenlet on ``loop`` (a private loop
    unless one is given) until the response body is complete, as a server
    would, so coroutine views, executor views, synchronized code and
    SQLAlchemy's sync API on an asyncio driver (``aiopyramid.mode =
    greenlet``) all work.  Close it (or use it as a context manager) to close
    a private loop and its executor.  An asyncio driver's connections belong
    to the loop that opened them: dispose of such an engine on :attr:`loop`
    before closing.
    """

    def __init__(
        self, app: WSGIApp, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.app = app
        self.owns_loop = loop is None
        self.loop = asyncio.new_event_loop() if loop is None else loop

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        """Run one request to completion and return its body as a list of bytes."""
        if self.loop.is_running():
            raise ScopeError(
                "SynchronousApp was called while its event loop is running "
                "(from an async test?). Await "
                "aiopyramid.helpers.spawn_greenlet(app, environ, start_response) "
                "there instead."
            )
        # A task per request, as servers run them, and in it a request
        # greenlet like theirs: one that SQLAlchemy's sync API may wait in
        # for an asyncio driver (spawn_greenlet's children may not).
        return self.loop.run_until_complete(
            run_in_child_greenlet(_complete, self.app, environ, start_response)
        )

    def close(self) -> None:
        """Close the private loop, waiting for its executor's threads."""
        if self.owns_loop and not self.loop.is_closed():
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def __enter__(self) -> SynchronousApp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _complete(
    app: WSGIApp, environ: Environ, start_response: StartResponse
) -> list[bytes]:
    # Iterate in the greenlet too: a streamed body may wait for coroutines.
    app_iter = app(environ, start_response)
    try:
        return list(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
