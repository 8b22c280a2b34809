"""The bridge between plain Python code and the asyncio event loop.

The event loop runs in one greenlet (the *loop greenlet*); each request runs in
a child greenlet.  Plain code in a child greenlet waits for a coroutine with
:func:`synchronize` as if it were a plain function: the loop keeps serving
everybody else meanwhile.  Coroutine code runs plain code that waits with
:func:`spawn_greenlet`.  The machinery behind both lives in a private module.

A thread without an event loop (an executor view, a :func:`use_executor`
function) waits by handing the coroutine to the loop its request belongs to.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, ParamSpec, TypeVar, overload

from pyramid.exceptions import ConfigurationError

from ._bridge import (
    SCOPE_ERROR_MESSAGE,
    can_wait,
    home_loop,
    in_loop_greenlet,
    task_in,
    wait_for,
)
from ._greenlets import run_in_child_greenlet, run_in_greenlet
from ._unwrap import allow_yield_from

__all__ = [
    "SCOPE_ERROR_MESSAGE",
    "is_generator",
    "run_in_greenlet",
    "spawn_greenlet",
    "spawn_greenlet_on_scope_error",
    "synchronize",
    "use_executor",
]

P = ParamSpec("P")
T = TypeVar("T")


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


async def spawn_greenlet(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` in a new child greenlet and await its result.

    Inside the child, plain code may call :func:`synchronize`-d coroutines
    and wait for them as for any function; the loop serves other work
    meanwhile.  The original library's protocol works too: the child may
    switch up an asyncio future or task; it is awaited, and its result is
    taken as the child's next switched value (a task of
    :func:`run_in_greenlet` resumes the child and returns what the child
    switches up next); switching up, or returning, a value that is not a
    future ends the wait with that value, and a returned future is awaited.

    The child runs in a copy of the caller's context, so context variables it
    sets stay with it.  If the awaiting task is cancelled,
    :class:`asyncio.CancelledError` is raised in the child at its waiting
    point so that ``finally`` blocks run.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(home_loop.set, loop)
    call = functools.partial(func, **kwargs) if kwargs else func
    child = run_in_child_greenlet(call, *args, provider=False)
    result = await task_in(context, loop, child)
    while asyncio.isfuture(result):
        result = await result
    return result


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
      request's loop and blocks this thread until it is done; where no loop
      at all is known (a plain script), raises ``ScopeError`` if ``strict``,
      else returns the coroutine for the caller to run.

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
            if not strict and not can_wait():
                return result
            return wait_for(result, name)

        return synchronized

    if func is None:
        return decorate
    return decorate(func)


def spawn_greenlet_on_scope_error(func: Callable[P, T]) -> Callable[P, T]:
    """Let ``func`` be called from coroutine code as well as from plain code.

    Called from plain code (a request's greenlet, an executor thread), the
    wrapper calls ``func`` and returns what it returns.  Called in the
    greenlet that runs the loop (coroutine code, where nothing may wait), it
    returns an awaitable instead, which runs ``func`` in a child greenlet
    where its synchronized coroutines can wait: ``await`` it.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if in_loop_greenlet():
            # A future rather than a coroutine: awaitable more than once, and
            # never warned about when a caller drops it.
            return asyncio.ensure_future(spawn_greenlet(func, *args, **kwargs))  # type: ignore[return-value]
        return func(*args, **kwargs)

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
