"""The bridge between plain Python code and the asyncio event loop.

The event loop runs in one greenlet (the *loop greenlet*); each request runs in
a child greenlet.  Plain code in a child greenlet waits for a coroutine by
handing it to the loop and switching away; the loop keeps serving everybody
else meanwhile and switches back with the result.  Nothing above the waiting
point needs to know that asyncio exists.

Two kinds of child greenlet are served:

* greenlets made by :func:`spawn_greenlet`: their parent is a driver coroutine
  that awaits whatever the child hands it, on the task that spawned it;
* greenlets made by somebody else (uWSGI's asyncio plugin runs every request
  in one and ignores values switched to it): the awaited work runs in a task of
  its own, and a callback of that task (:func:`run_in_greenlet`) switches back.

A thread without an event loop (an executor view, a :func:`use_executor`
function) waits by handing the coroutine to the loop its request belongs to.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, ParamSpec, TypeVar, overload

import greenlet
from pyramid.exceptions import ConfigurationError

from .exceptions import ScopeError

__all__ = [
    "is_generator",
    "run_in_greenlet",
    "spawn_greenlet",
    "spawn_greenlet_on_scope_error",
    "synchronize",
    "use_executor",
]

P = ParamSpec("P")
T = TypeVar("T")

#: The loop that the current request belongs to.  Set in the context of every
#: greenlet spawned here; a copied context carries it into executor threads,
#: where no loop is running, so that they know where to send coroutines.
home_loop: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar(
    "aiopyramid.home_loop"
)

#: Loops that serve greenlets made by a server rather than by
#: :func:`spawn_greenlet` (uWSGI's asyncio plugin).  A thread started with a
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


#: Idle children, per thread (a greenlet can only run in its own thread).
_pool = threading.local()
_POOL_SIZE = 256


def idle_greenlets() -> list[_SpawnedGreenlet]:
    """This thread's pool of idle child greenlets."""
    try:
        return _pool.idle  # type: ignore[no-any-return]
    except AttributeError:
        _pool.idle = []
        return _pool.idle  # type: ignore[no-any-return]


def is_generator(obj: object) -> bool:
    """Return whether ``obj`` is a coroutine, or makes one when called.

    True for ``async def`` functions and their coroutine objects, generator
    functions and generators (the pre-3.5 style of coroutine), and asyncio
    futures; false for plain functions and other objects.
    """
    return (
        inspect.iscoroutinefunction(obj)
        or inspect.isgeneratorfunction(obj)
        or inspect.iscoroutine(obj)
        or inspect.isgenerator(obj)
        or asyncio.isfuture(obj)
    )


def _underlying_function(obj: Any) -> Any:
    """Find the plain function behind a bound method, partial or callable."""
    while True:
        if isinstance(obj, functools.partial):
            obj = obj.func
        elif inspect.ismethod(obj):
            obj = obj.__func__
        elif inspect.isfunction(obj) or inspect.isclass(obj) or not callable(obj):
            return obj
        else:  # a callable instance
            obj = type(obj).__call__


def allow_yield_from(obj: Any) -> None:
    """Let a legacy generator function ``yield from`` native coroutines.

    Python 3.11 removed ``asyncio.coroutine``; :func:`types.coroutine` still
    flags a generator function's code object (in place) so that the
    generators it makes may delegate to ``async def`` coroutines and be
    awaited.  Applied to the function behind methods, partials and callable
    objects, since a wrapper around those would not help.
    """
    func = _underlying_function(obj)
    if inspect.isfunction(func) and inspect.isgeneratorfunction(func):
        types.coroutine(func)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def in_loop_greenlet() -> bool:
    """Return whether the caller runs in a greenlet that runs an event loop.

    Code there must ``await`` rather than wait: waiting would stop the loop.
    """
    if _running_loop() is None:
        return False
    current = greenlet.getcurrent()
    return current.parent is None or current in _loop_greenlets


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _itself(awaitable: Awaitable[T]) -> Awaitable[T]:
    return awaitable


def wait_for(awaitable: Awaitable[T], name: str = "the coroutine") -> T:
    """Wait for ``awaitable`` from plain code and return its result.

    This is the one place where code outside the loop waits for a coroutine;
    every other module goes through it.  ``name`` goes into error messages.
    """
    current = greenlet.getcurrent()
    if type(current) is _SpawnedGreenlet:
        # Our driver is blocked in child.switch(): hand it the awaitable and
        # sleep until it switches back with the value (or throws the error).
        return current.parent.switch(awaitable)  # type: ignore[no-any-return]
    loop = _running_loop()
    if loop is None:
        return _wait_from_thread(awaitable, name)
    if current.parent is None or current in _loop_greenlets:
        _close(awaitable)
        raise ScopeError(
            f"{name} was called in the greenlet that runs the event loop, "
            "where waiting would stop the loop. Await the coroutine directly, "
            "use @synchronize(strict=False) and await what it returns, or run "
            "the calling code in a child greenlet with "
            "`await aiopyramid.helpers.spawn_greenlet(func, *args)`."
        )
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
        future = loop.create_task(_as_coroutine(awaitable), context=context)
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
    loop = home_loop.get(None) or _only_host_loop()
    if loop is None or loop.is_closed():
        _close(awaitable)
        raise ScopeError(
            f"{name} was called in a thread with no event loop to run it on. "
            "Call it from a request served through aiopyramid (or from code "
            "started with aiopyramid.helpers.spawn_greenlet), or run it "
            "yourself with asyncio.run()."
        )
    return asyncio.run_coroutine_threadsafe(_await(awaitable), loop).result()


def _only_host_loop() -> asyncio.AbstractEventLoop | None:
    running = [loop for loop in list(_host_loops) if loop.is_running()]
    return running[0] if len(running) == 1 else None


def _close(awaitable: object) -> None:
    """Close a coroutine that will never run, so Python does not warn."""
    if inspect.iscoroutine(awaitable) or inspect.isgenerator(awaitable):
        awaitable.close()


async def run_in_greenlet(
    back: greenlet.greenlet,
    future: asyncio.Future[Any],
    func: Callable[..., Awaitable[Any]],
    *args: Any,
    **kwargs: Any,
) -> None:
    """Await ``func(*args, **kwargs)``, settle ``future``, then resume ``back``.

    Runs on the event loop as a task.  ``back`` is the greenlet that waits for
    ``future``: it is switched to once the future holds the result or the
    exception, so it never needs its parent to wake it up.
    """
    try:
        result = await func(*args, **kwargs)
    except asyncio.CancelledError:
        future.cancel()
    except BaseException as exc:  # handed over to the waiting greenlet
        future.set_exception(exc)
    else:
        future.set_result(result)
    if not back.dead:
        back.switch()


async def run_in_child_greenlet(func: Callable[..., T], /, *args: Any) -> T:
    """Run ``func(*args)`` in a child greenlet, sharing the current task's context.

    The engine of :func:`spawn_greenlet`, for callers that already run in a
    task of their own (the ASGI bridge: servers start a task per request),
    and so need no copy of the context and no new task.
    """
    loop_greenlet = greenlet.getcurrent()
    if loop_greenlet.parent is not None:
        _loop_greenlets.add(loop_greenlet)
    idle = idle_greenlets()
    child = idle.pop() if idle else _SpawnedGreenlet()
    child.parent = loop_greenlet
    # The child shares this task's context, as an awaited coroutine would, so
    # the coroutines it hands up see the context variables it set.
    child.gr_context = loop_greenlet.gr_context
    switched = child.switch(func, args, {})
    while type(switched) is not _Outcome:
        if not inspect.isawaitable(switched):
            # The original library's rule: anything but a future ends the wait
            # (the child is left suspended, never to be pooled again).
            return switched  # type: ignore[no-any-return]
        try:
            value = await switched
        except BaseException as exc:  # cancellation included: unwind the child
            switched = child.throw(type(exc), exc, exc.__traceback__)
        else:
            switched = child.switch(value)
    child.gr_context = None
    if len(idle) < _POOL_SIZE:
        idle.append(child)
    if switched.error is not None:
        raise switched.error
    return switched.value  # type: ignore[no-any-return]


async def spawn_greenlet(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` in a new child greenlet and await its result.

    Inside the child, plain code may call :func:`synchronize`-d coroutines
    and wait for them as for any function; the loop serves other work
    meanwhile.  If the child switches a future (or any awaitable) to its
    parent, it is awaited and its result is switched back; switching up any
    other value ends the wait with that value.  The child runs in a copy of
    the caller's context, so context variables it sets stay with it.  If the
    awaiting task is cancelled, :class:`asyncio.CancelledError` is raised in
    the child at its waiting point so that ``finally`` blocks run.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(home_loop.set, loop)
    call = functools.partial(func, **kwargs) if kwargs else func
    return await loop.create_task(run_in_child_greenlet(call, *args), context=context)


@overload
def synchronize(
    func: Callable[P, Awaitable[T]], /, *, strict: bool = ...
) -> Callable[P, T]: ...


@overload
def synchronize(
    func: None = ..., /, *, strict: bool = ...
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, T]]: ...


def synchronize(func: Any = None, /, *, strict: bool = True) -> Any:
    """Make a coroutine function callable as a plain, blocking function.

    Use as ``@synchronize`` or ``@synchronize(strict=False)``, on an
    ``async def`` function or on a legacy generator-based coroutine function
    (``def f(): yield from ...``).  The wrapper, called

    * in a child greenlet (a request served through aiopyramid, or code run
      with :func:`spawn_greenlet`, or uWSGI's asyncio plugin): runs the
      coroutine on the loop, lets the loop serve others meanwhile, and returns
      its result or raises its exception with its traceback;
    * in the greenlet that runs the loop: raises
      :class:`~aiopyramid.exceptions.ScopeError` if ``strict``, else returns
      the coroutine for the caller to await;
    * in a thread without a loop (an executor view): runs the coroutine on the
      request's loop and blocks this thread until it is done.

    With ``strict=True`` anything but a coroutine function raises
    :class:`pyramid.exceptions.ConfigurationError`; with ``strict=False`` a
    plain function is called as it is, and only awaitable results wait.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if strict and not is_generator(fn):
            raise ConfigurationError(
                f"synchronize() needs a coroutine function, and {fn!r} is not "
                "one. Define it with `async def`, or use "
                "@synchronize(strict=False) to accept plain functions too."
            )
        allow_yield_from(fn)
        name = f"synchronized {getattr(fn, '__qualname__', fn)!s}()"

        @functools.wraps(fn)
        def synchronized(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            if not inspect.isawaitable(result):
                return result
            if not strict and in_loop_greenlet():
                return result
            return wait_for(result, name)

        return synchronized

    if func is None:
        return decorate
    return decorate(func)


def spawn_greenlet_on_scope_error(func: Callable[P, T]) -> Callable[P, T]:
    """Let ``func`` be called from the loop's greenlet as well as from plain code.

    Called from plain code, the wrapper returns what ``func`` returns.  When
    ``func`` raises :class:`~aiopyramid.exceptions.ScopeError` because it was
    called in the greenlet that runs the loop, the wrapper instead returns an
    awaitable that runs ``func`` again, from the start, in a child greenlet:
    ``await`` it.  Keep side effects after the first synchronized call.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except ScopeError:
            if not in_loop_greenlet():
                raise
            return asyncio.ensure_future(spawn_greenlet(func, *args, **kwargs))  # type: ignore[return-value]

    return wrapper


@overload
def use_executor(
    func: Callable[P, T], /, *, executor: Executor | None = ...
) -> Callable[P, Coroutine[Any, Any, T]]: ...


@overload
def use_executor(
    func: None = ..., /, *, executor: Executor | None = ...
) -> Callable[[Callable[P, T]], Callable[P, Coroutine[Any, Any, T]]]: ...


def use_executor(func: Any = None, /, *, executor: Executor | None = None) -> Any:
    """Turn a blocking function into a coroutine function that runs it in a thread.

    Use as ``@use_executor`` (the loop's default executor) or
    ``@use_executor(executor=pool)``.  The function runs on a pool thread in a
    copy of the caller's context, so Pyramid's current request and other
    context variables are the caller's there too.
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def in_executor(*args: Any, **kwargs: Any) -> T:
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()
            context.run(home_loop.set, loop)
            call = functools.partial(context.run, fn, *args, **kwargs)
            return await loop.run_in_executor(executor, call)

        return in_executor

    if func is None:
        return decorate
    return decorate(func)
