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
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

import greenlet

from ._unwrap import unwrap_view
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

#: Greenlets known to run an event loop (those that ever drove a spawned
#: greenlet).  The root greenlet of a thread is always taken to be one.
_loop_greenlets: weakref.WeakSet[greenlet.greenlet] = weakref.WeakSet()


class _SpawnedGreenlet(greenlet.greenlet):
    """A child greenlet that runs jobs for :func:`run_in_child_greenlet`.

    Its parent (the driver) is waiting in ``child.switch()`` whenever the
    child runs, so the child may switch an awaitable up and get the awaited
    value back.  When a job ends, the child switches its :class:`_Outcome`
    up and waits for the next job: creating a greenlet costs several times
    more than switching into an existing one, so idle children are pooled.
    """

    #: True while the child runs a step of a coroutine (see _run_coroutine).
    in_coroutine = False
    #: What that coroutine waits on, for the driver to await.
    waits_on: Any = None

    def __init__(self) -> None:
        # A module-level run function: a bound method would make a reference
        # cycle that keeps an abandoned child from ever being collected.
        super().__init__(_serve_jobs)


def _serve_jobs(func: Any, args: Any, kwargs: Any) -> None:
    while True:
        try:
            outcome = _Outcome(func(*args, **kwargs), None)
        except greenlet.GreenletExit:
            # Killed (by the garbage collector, or a closed websocket): die
            # quietly; switching away now would keep a dead job alive.
            raise
        except BaseException as exc:  # handed to the driver, which raises it
            outcome = _Outcome(None, exc)
        func = args = kwargs = None  # hold nothing of the job while idle
        func, args, kwargs = greenlet.getcurrent().parent.switch(outcome)


class _Outcome:
    """How a job in a :class:`_SpawnedGreenlet` ended."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


class _ThreadState(threading.local):
    """What the bridge keeps per thread (a greenlet only runs in its own)."""

    def __init__(self) -> None:
        #: Idle children.
        self.idle: list[_SpawnedGreenlet] = []


_state = _ThreadState()
_POOL_SIZE = 256


def idle_greenlets() -> list[_SpawnedGreenlet]:
    """This thread's pool of idle child greenlets."""
    return _state.idle


def allow_yield_from(obj: Any, attr: str | None = None) -> None:
    """Let a legacy generator function ``yield from`` native coroutines.

    Python 3.11 removed ``asyncio.coroutine``; :func:`types.coroutine` still
    flags a generator function's code object (in place) so that the
    generators it makes may delegate to ``async def`` coroutines and be
    awaited.  Applied to every generator function behind ``obj`` (a view,
    with ``attr``, as :func:`~aiopyramid._unwrap.unwrap_view` finds them:
    behind methods, partials, callable objects and ``functools.wraps``
    wrappers), since a wrapper around those would not help.
    """
    for func in unwrap_view(obj, attr):
        if inspect.isfunction(func) and inspect.isgeneratorfunction(func):
            types.coroutine(func)


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
        or (type(current) is _SpawnedGreenlet and current.in_coroutine)
        or current in _loop_greenlets
    )


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def wait_for(awaitable: Awaitable[T], name: str = "the coroutine") -> T:
    """Wait for ``awaitable`` from plain code and return its result.

    This is the one place where code outside the loop waits for a coroutine;
    every other module goes through it.  ``name`` goes into error messages.
    """
    current = greenlet.getcurrent()
    if type(current) is _SpawnedGreenlet:
        if current.in_coroutine:
            _close(awaitable)
            raise ScopeError(SCOPE_ERROR_MESSAGE.format(name))
        if type(awaitable) not in _COROUTINES:
            awaitable = _await(awaitable)
        return _run_coroutine(current, awaitable)  # type: ignore[arg-type]
    loop = running_loop()
    if loop is None:
        return _wait_from_thread(awaitable, name)
    if current.parent is None or current in _loop_greenlets:
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
    if asyncio.isfuture(awaitable) and awaitable.get_loop() is loop:
        future: asyncio.Future[T] = awaitable
    else:
        future = task_in(context, loop, _as_coroutine(awaitable))
    # Passing the context spares the copy add_done_callback makes otherwise.
    future.add_done_callback(_Resume(current), context=context)
    current.parent.switch()
    return future.result()


#: Coroutine objects that :func:`_run_coroutine` runs as they are: native ones
#: and legacy generator-based ones (anything else awaitable is wrapped).
_COROUTINES = (types.CoroutineType, types.GeneratorType)

#: What a child switches up to have its driver await ``child.waits_on``.
_WAIT = object()


def _run_coroutine(current: _SpawnedGreenlet, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end in this greenlet, as a task would step it.

    The coroutine's steps run here, in the task (and context) of the driver
    that waits in ``child.switch()``; whatever a step waits on (a future, or
    ``None`` for one turn of the loop) is handed to the driver, which yields
    it to its task and switches back once the task resumes.  So a coroutine
    that never waits (a hello-world view, a cache hit) finishes without the
    loop being involved, and every step runs in the same greenlet: libraries
    that tie a coroutine to the greenlet running it (SQLAlchemy's asyncio API
    spawns greenlets whose parent is that greenlet) keep working.  While a
    step runs, this greenlet is the loop's (:func:`in_loop_greenlet` is true;
    waiting raises :class:`~aiopyramid.exceptions.ScopeError`), as in any
    coroutine.
    """
    resume: Any = coro.send
    value: Any = None
    try:
        while True:
            current.in_coroutine = True
            try:
                current.waits_on = resume(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            finally:
                current.in_coroutine = False
            try:
                value, resume = current.parent.switch(_WAIT), coro.send
            except BaseException as error:  # cancellation included: into coro
                value, resume = error, coro.throw
    finally:
        current.waits_on = None


@types.coroutine
def _pass_up(waits_on: Any) -> Generator[Any, Any, Any]:
    """Yield ``waits_on`` to the task running the driver; return what it sends."""
    return (yield waits_on)


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
    return asyncio.run_coroutine_threadsafe(_await(awaitable), loop).result()


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


async def run_in_greenlet(
    back: greenlet.greenlet,
    future: asyncio.Future[Any],
    func: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Await ``func(*args, **kwargs)``, settle ``future``, then resume ``back``.

    The original library's way for plain code to wait by hand, kept as it
    was: the greenlet ``back`` creates ``future``, schedules this coroutine as
    a task, switches that task up to its parent and, once resumed, reads
    ``future.result()``::

        this = greenlet.getcurrent()
        future = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(run_in_greenlet(this, future, fetch, key))
        this.parent.switch(task)
        value = future.result()

    ``func`` may be an ``async def`` function, a legacy generator function,
    or a plain function (its value is used as it is).
    The task resumes ``back`` itself, so the parent greenlet need not know
    about it, and returns what ``back`` switches up next (or returns): under
    :func:`aiopyramid.helpers.spawn_greenlet`, that is the child's next
    request to its driver.
    """
    allow_yield_from(func)
    try:
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):  # a plain function's value is kept
            result = await result
    except asyncio.CancelledError:
        future.cancel()
    except BaseException as exc:  # handed over to the waiting greenlet
        future.set_exception(exc)
    else:
        future.set_result(result)
    if back.dead:
        return None
    if type(back) is _SpawnedGreenlet:
        back.parent = greenlet.getcurrent()  # what it switches next comes here
    return back.switch()


async def run_in_child_greenlet(func: Callable[..., T], /, *args: Any) -> T:
    """Run ``func(*args)`` in a child greenlet, sharing the current task's context.

    The engine of :func:`aiopyramid.helpers.spawn_greenlet`, for callers that
    already run in a task of their own (the ASGI bridge: servers start a task
    per request),
    and so need no copy of the context and no new task.

    The child may switch up three kinds of thing:

    * an awaitable that is not a future (what :func:`wait_for` hands up): it
      is awaited and its result (or exception) switched back into the child;
    * an asyncio future or task (the original library's protocol): it is
      awaited and its result is taken as what the child switched up next,
      because whoever settles it (:func:`run_in_greenlet`) resumes the child
      itself; if its result is a plain value, the wait ends with it;
    * any other value: the wait ends with that value.
    """
    loop_greenlet = greenlet.getcurrent()
    if loop_greenlet.parent is not None and not (
        type(loop_greenlet) is _SpawnedGreenlet and loop_greenlet.in_coroutine
    ):
        _loop_greenlets.add(loop_greenlet)
    idle = idle_greenlets()
    child = idle.pop() if idle else _SpawnedGreenlet()
    child.parent = loop_greenlet
    # The child shares this task's context, as an awaited coroutine would, so
    # the coroutines it hands up see the context variables it set.
    child.gr_context = loop_greenlet.gr_context
    switched = child.switch(func, args, {})
    while type(switched) is not _Outcome:
        if switched is _WAIT:  # a coroutine running in the child waits
            try:
                value = await _pass_up(child.waits_on)
            except BaseException as exc:  # cancellation included: into the child
                child.parent = greenlet.getcurrent()
                switched = child.throw(type(exc), exc, exc.__traceback__)
            else:
                child.parent = greenlet.getcurrent()
                switched = child.switch(value)
        elif asyncio.isfuture(switched):
            try:
                switched = await switched
            except BaseException as exc:  # cancellation included: unwind the child
                child.parent = greenlet.getcurrent()
                switched = child.throw(type(exc), exc, exc.__traceback__)
        elif inspect.isawaitable(switched):
            try:
                value = await switched
            except BaseException as exc:  # cancellation included: unwind the child
                child.parent = greenlet.getcurrent()
                switched = child.throw(type(exc), exc, exc.__traceback__)
            else:
                # The child switches up to whoever resumes it (see
                # run_in_greenlet, which may have resumed it meanwhile).
                child.parent = greenlet.getcurrent()
                switched = child.switch(value)
        else:
            # The original library's rule: anything but a future ends the wait.
            # Nothing will resume the child: unwind it now (its ``finally``
            # blocks run), since a suspended greenlet caught in a reference
            # cycle, as a pooled one is, would never be collected.
            child.throw(greenlet.GreenletExit)
            return switched  # type: ignore[no-any-return]
    child.gr_context = None
    if len(idle) < _POOL_SIZE:
        idle.append(child)
    if switched.error is not None:
        raise switched.error
    return switched.value  # type: ignore[no-any-return]


def can_wait() -> bool:
    """Whether the caller could wait for a coroutine, rather than await it."""
    if running_loop() is None:
        return _thread_loop() is not None
    return not in_loop_greenlet()
