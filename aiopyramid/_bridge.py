"""The engine of the bridge between plain code and the asyncio event loop.

The event loop runs in one greenlet (the *loop greenlet*); each request runs in
a child greenlet.  Plain code in a child greenlet waits for a coroutine by
handing it to the loop and switching away; the loop keeps serving everybody
else meanwhile and switches back with the result.  Nothing above the waiting
point needs to know that asyncio exists.

Every way of waiting lives here, in :func:`wait_for`:

* greenlets made by :func:`run_in_child_greenlet` (so by
  :func:`aiopyramid.helpers.spawn_greenlet` and the ASGI bridge): their parent
  is a driver coroutine that awaits whatever the child hands it, on the task
  that spawned it;
* greenlets made by somebody else (uWSGI's asyncio plugin runs every request
  in one and ignores values switched to it): the awaited work runs in a task
  of its own, and that task's done callback switches back;
* a thread without an event loop (an executor view) hands the coroutine to
  the loop its request belongs to and blocks until it is done.

:mod:`aiopyramid.helpers` is the public face of this module.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import greenlet

from ._greenlets import (
    COROUTINES,
    SpawnedGreenlet,
    loop_greenlets,
    run_coroutine,
    run_in_child_greenlet,
    run_in_thread_greenlet,
)
from ._watchdog import ensure_watched
from .exceptions import ScopeError

T = TypeVar("T")

#: What a :class:`~aiopyramid.exceptions.ScopeError` says when a coroutine is
#: waited for in the greenlet that runs the event loop; ``{}`` is the name of
#: what was called.
SCOPE_ERROR_MESSAGE = (
    "{} was called in the greenlet that runs the event loop, where waiting "
    "would stop the loop. Await the coroutine directly, use "
    "@synchronize(strict=False) and await what it returns, or run the calling "
    "code in a child greenlet with "
    "`await aiopyramid.helpers.spawn_greenlet(func, *args)`."
)

#: Python 3.11 added ``context=`` to ``loop.create_task``; before it, a task
#: takes a copy of the context current when it is created.
_TASK_TAKES_CONTEXT = sys.version_info >= (3, 11)

#: The loop that the current request belongs to.  Set in the context of every
#: greenlet spawned here; a copied context carries it into executor threads,
#: where no loop is running, so that they know where to send coroutines.
home_loop: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar(
    "aiopyramid.home_loop"
)

#: Loops that serve greenlets made by a server rather than by
#: :func:`run_in_child_greenlet` (uWSGI's asyncio plugin).  A thread started with a
#: bare ``loop.run_in_executor`` carries no context, so no ``home_loop``: when
#: exactly one such loop is running in the process, it is the thread's.
_host_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def in_loop_greenlet() -> bool:
    """Return whether the caller runs in a greenlet that runs an event loop.

    Code there must ``await`` rather than wait: waiting would stop the loop.
    """
    if running_loop() is None:
        return False
    current = greenlet.getcurrent()
    return (
        current.parent is None
        or (type(current) is SpawnedGreenlet and current.in_coroutine)
        or current in loop_greenlets
    )


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def wait_for(awaitable: Awaitable[T], name: str = "the coroutine") -> T:
    """Wait for ``awaitable`` from plain code and return its result.

    This is the one place where code outside the loop waits for a coroutine;
    every other module goes through it.  ``name`` goes into error messages.
    """
    current = greenlet.getcurrent()
    if type(current) is SpawnedGreenlet:
        if current.in_coroutine:
            _close(awaitable)
            raise ScopeError(SCOPE_ERROR_MESSAGE.format(name))
        if type(awaitable) not in COROUTINES:
            awaitable = _await(awaitable)
        return run_coroutine(current, awaitable)  # type: ignore[arg-type]
    loop = running_loop()
    if loop is None:
        return _wait_from_thread(awaitable, name)
    if current.parent is None or current in loop_greenlets:
        _close(awaitable)
        raise ScopeError(SCOPE_ERROR_MESSAGE.format(name))
    # A greenlet we did not spawn (uWSGI's asyncio plugin): its parent ignores
    # values switched to it, so nothing can be awaited on its behalf.  A
    # coroutine runs as a task of its own, sharing this greenlet's context (a
    # future already is one); the one done callback switches back here.
    context = current.gr_context
    if context is None:
        context = current.gr_context = contextvars.Context()
    # Threads this request starts (executor views copy the context) must find
    # the loop to hand their coroutines to; the server set nothing for them.
    if home_loop.get(None) is not loop:  # once per request greenlet
        home_loop.set(loop)  # ``context`` is this greenlet's current context
        _host_loops.add(loop)
        ensure_watched(None, loop)  # no server hook of ours runs under uWSGI
    if asyncio.isfuture(awaitable) and awaitable.get_loop() is loop:
        future: asyncio.Future[T] = awaitable
    else:
        future = task_in(context, loop, _as_coroutine(awaitable))
    # Passing the context spares the copy add_done_callback makes otherwise.
    future.add_done_callback(_Resume(current), context=context)
    current.parent.switch()
    return future.result()


class _Resume:
    """Done callback that switches back into the greenlet waiting for the future."""

    __slots__ = ("waiting",)

    def __init__(self, waiting: greenlet.greenlet) -> None:
        self.waiting = waiting

    def __call__(self, future: asyncio.Future[Any]) -> None:
        if not self.waiting.dead:
            self.waiting.switch()


def _as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """``awaitable`` itself if it is a coroutine, else one that awaits it."""
    if inspect.iscoroutine(awaitable):
        return awaitable
    return _await(awaitable)


def _wait_from_thread(awaitable: Awaitable[T], name: str) -> T:
    # No loop runs in this thread: an executor thread of some request. The
    # request's loop is free (its greenlet waits for this thread), so give it
    # the coroutine and block this thread until the loop is done with it.
    loop = _thread_loop()
    if loop is None:
        _close(awaitable)
        raise ScopeError(
            f"{name} was called in a thread with no event loop to run it on. "
            "A plain WSGI server (waitress, wsgiref, gunicorn's sync or gthread "
            "workers) runs no event loop: serve the application with "
            "`gunicorn -k aiopyramid.gunicorn.worker.AsyncGunicornWorker`, with "
            "an ASGI server (uvicorn, hypercorn, granian) through "
            "aiopyramid.asgi.make_asgi_app, or with uWSGI's asyncio plugin. "
            "Outside a request, start the calling code with "
            "aiopyramid.helpers.spawn_greenlet, or run the coroutine yourself "
            "with asyncio.run()."
        )
    # On the loop, the coroutine runs in a request greenlet of its own, as it
    # would in the request's: plain code it calls may wait, and SQLAlchemy's
    # sync API may use an asyncio driver there.
    job: Coroutine[Any, Any, T] = run_in_child_greenlet(wait_for, awaitable, name)
    # Named after the awaited coroutine: OpenTelemetry's asyncio
    # instrumentation (OTEL_PYTHON_ASYNCIO_COROUTINE_NAMES_TO_TRACE) selects
    # what run_coroutine_threadsafe runs by the coroutine's __name__.
    job.__name__ = getattr(awaitable, "__name__", job.__name__)  # type: ignore[attr-defined]
    job.__qualname__ = getattr(awaitable, "__qualname__", job.__qualname__)  # type: ignore[attr-defined]
    return asyncio.run_coroutine_threadsafe(job, loop).result()


def call_in_thread_greenlet(func: Callable[..., T], /, *args: Any) -> T:
    """Call ``func(*args)`` on this pool thread, in its marked greenlet.

    Whatever the greenlet switches up (SQLAlchemy's awaitables) runs on the
    request's loop while this thread blocks, and its result, or exception,
    goes back in: plain code on a pool thread (an executor view, the whole
    request in ``aiopyramid.mode = thread``) may use SQLAlchemy's sync API on
    an asyncio driver as on a blocking one.
    """
    return run_in_thread_greenlet(_wait_for_driver, func, *args)


def _wait_for_driver(awaitable: Awaitable[T]) -> T:
    return _wait_from_thread(awaitable, "SQLAlchemy's driver call")


def _thread_loop() -> asyncio.AbstractEventLoop | None:
    """The loop that a thread without one of its own may hand coroutines to."""
    loop = home_loop.get(None) or _only_host_loop()
    return None if loop is None or loop.is_closed() else loop


def _only_host_loop() -> asyncio.AbstractEventLoop | None:
    running = [loop for loop in list(_host_loops) if loop.is_running()]
    return running[0] if len(running) == 1 else None


def _close(awaitable: object) -> None:
    """Close a coroutine that will never run, so Python does not warn."""
    if inspect.iscoroutine(awaitable) or inspect.isgenerator(awaitable):
        awaitable.close()


def task_in(
    context: contextvars.Context,
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
) -> asyncio.Task[T]:
    """Start ``coro`` as a task that runs in ``context``."""
    if _TASK_TAKES_CONTEXT:
        return loop.create_task(coro, context=context)  # type: ignore[call-arg]
    # Python 3.10: a task takes a copy of the context current when it is made,
    # so it sees ``context``'s variables, but what it sets stays in the copy.
    if context is greenlet.getcurrent().gr_context:  # current: cannot re-enter
        return loop.create_task(coro)
    return context.run(loop.create_task, coro)


def can_wait() -> bool:
    """Whether the caller could wait for a coroutine, rather than await it."""
    if running_loop() is None:
        return _thread_loop() is not None
    return not in_loop_greenlet()
