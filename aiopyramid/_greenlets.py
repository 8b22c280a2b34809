"""The greenlets plain code runs in, and the driver that waits for them.

:func:`run_in_child_greenlet` runs a function in a pooled child greenlet
whose parent, a coroutine on the caller's task, awaits whatever the child
hands it.  A coroutine that plain code in the child waits for runs in the
child itself (:func:`run_coroutine`): the driver only yields to its task
what the coroutine waits on.  :mod:`aiopyramid._bridge` builds every way of
waiting on this.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

import greenlet

from ._unwrap import allow_yield_from

T = TypeVar("T")

#: Greenlets known to run an event loop (those that ever drove a spawned
#: greenlet).  The root greenlet of a thread is always taken to be one.
loop_greenlets: weakref.WeakSet[greenlet.greenlet] = weakref.WeakSet()


class SpawnedGreenlet(greenlet.greenlet):
    """A child greenlet that runs jobs for :func:`run_in_child_greenlet`.

    Its parent (the driver) is waiting in ``child.switch()`` whenever the
    child runs, so the child may switch an awaitable up and get the awaited
    value back.  When a job ends, the child switches its :class:`_Outcome`
    up and waits for the next job: creating a greenlet costs several times
    more than switching into an existing one, so idle children are pooled.
    """

    #: SQLAlchemy's mark of a greenlet in which its sync API may wait on an
    #: asyncio driver: its ``await_`` switches the driver's awaitable up to
    #: this greenlet's parent (the driver) and expects the result back.  Set
    #: per job by :func:`run_in_child_greenlet`: true for requests, false for
    #: :func:`~aiopyramid.helpers.spawn_greenlet`, which keeps the original
    #: library's protocol for a switched-up future.
    __sqlalchemy_greenlet_provider__ = False
    #: True while the child runs a step of a coroutine (see _run_coroutine).
    in_coroutine = False
    #: What that coroutine waits on, for the driver to await.
    waits_on: Any = None

    def __init__(self) -> None:
        # A module-level run function: a bound method would make a reference
        # cycle that keeps an abandoned child from ever being collected.
        super().__init__(_serve_jobs)


def _serve_jobs() -> None:
    # Started without a job (see _new_child), then given one per switch.
    func, args, kwargs = greenlet.getcurrent().parent.switch()
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


def _new_child() -> SpawnedGreenlet:
    """A started child waiting for its first job.

    A greenlet holds the arguments it was started with for as long as it
    lives: started with its first job's, a pooled child would keep that
    request (its environ, its response and the connection behind it) alive
    for good.  So it starts with none and gets every job by a switch.
    """
    child = SpawnedGreenlet()
    child.switch()
    return child


class _Outcome:
    """How a job in a :class:`SpawnedGreenlet` ended."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


class _ThreadState(threading.local):
    """What the bridge keeps per thread (a greenlet only runs in its own)."""

    def __init__(self) -> None:
        #: Idle children.
        self.idle: list[SpawnedGreenlet] = []


_state = _ThreadState()
_POOL_SIZE = 256


def idle_greenlets() -> list[SpawnedGreenlet]:
    """This thread's pool of idle child greenlets."""
    return _state.idle


#: Coroutine objects that :func:`run_coroutine` runs as they are: native ones
#: and legacy generator-based ones (anything else awaitable is wrapped).
COROUTINES = (types.CoroutineType, types.GeneratorType)

#: What a child switches up to have its driver await ``child.waits_on``.
_WAIT = object()


def run_coroutine(current: SpawnedGreenlet, coro: Coroutine[Any, Any, T]) -> T:
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
    if type(back) is SpawnedGreenlet:
        back.parent = greenlet.getcurrent()  # what it switches next comes here
    return back.switch()


def _hands_off(future: asyncio.Future[Any]) -> bool:
    """Whether ``future`` is a task of :func:`run_in_greenlet`, which resumes
    the greenlet that switched it up by itself (the original library's way)."""
    coro = future.get_coro() if isinstance(future, asyncio.Task) else None
    return getattr(coro, "cr_code", None) is run_in_greenlet.__code__


async def run_in_child_greenlet(
    func: Callable[..., T], /, *args: Any, provider: bool = True
) -> T:
    """Run ``func(*args)`` in a child greenlet, sharing the current task's context.

    The engine of every request (the ASGI bridge: servers start a task per
    request; the gunicorn worker's connection task) and of
    :func:`aiopyramid.helpers.spawn_greenlet`: callers that already run in a
    task of their own need no copy of the context and no new task.

    The child may switch up four kinds of thing:

    * ``_WAIT``, from :func:`run_coroutine`: a coroutine running in the child
      waits on ``child.waits_on``, which is yielded to this task; what the
      task sends back (or throws in) goes back into the child;
    * an awaitable that is not a future (switched up by hand, or by
      SQLAlchemy's ``await_``): it is awaited and its result (or exception)
      switched back into the child;
    * an asyncio future or task: a task of :func:`run_in_greenlet` (the
      original library's protocol) is awaited and its result is taken as
      what the child switched up next, because that task resumes the child
      itself; any other future is, in a ``provider`` child, awaited and its
      result switched back (SQLAlchemy switches up a shielded future when it
      closes an invalidated connection), and otherwise treated as the
      original library did: its result is what the child switched up next;
    * any other value: the wait ends with that value.

    ``provider`` marks the child as a greenlet in which SQLAlchemy's sync
    API may use an asyncio driver (``postgresql+asyncpg``,
    ``sqlite+aiosqlite``): every query and pool wait then yields to the loop.
    """
    loop_greenlet = greenlet.getcurrent()
    if loop_greenlet.parent is not None and not (
        type(loop_greenlet) is SpawnedGreenlet and loop_greenlet.in_coroutine
    ):
        loop_greenlets.add(loop_greenlet)
    idle = idle_greenlets()
    child = idle.pop() if idle else _new_child()
    child.parent = loop_greenlet
    child.__sqlalchemy_greenlet_provider__ = provider
    # The child shares this task's context, as an awaited coroutine would, so
    # the coroutines it hands up see the context variables it set.
    child.gr_context = loop_greenlet.gr_context
    switched = child.switch(func, args, {})
    while type(switched) is not _Outcome:
        # What the child waits on, and whether its result goes back into the
        # child (or, the original library's protocol for a future, is already
        # what the child switched up next: whoever settled it resumed it).
        waited: Awaitable[Any]
        if switched is _WAIT:  # a coroutine running in the child waits
            waited, resumes = _pass_up(child.waits_on), True
        elif asyncio.isfuture(switched):
            waited, resumes = switched, provider and not _hands_off(switched)
        elif inspect.isawaitable(switched):
            waited, resumes = switched, True
        else:
            # The original library's rule: anything but a future ends the wait.
            # Nothing will resume the child: unwind it now (its ``finally``
            # blocks run), since a suspended greenlet caught in a reference
            # cycle, as a pooled one is, would never be collected.
            child.throw(greenlet.GreenletExit)
            return switched  # type: ignore[no-any-return]
        try:
            value = await waited
        except BaseException as exc:  # cancellation included: into the child
            # The child switches up to whoever resumes it (run_in_greenlet
            # may have resumed it from another greenlet meanwhile).
            child.parent = greenlet.getcurrent()
            switched = child.throw(type(exc), exc, exc.__traceback__)
        else:
            if resumes:
                child.parent = greenlet.getcurrent()
                switched = child.switch(value)
            else:
                switched = value
    child.gr_context = None
    if len(idle) < _POOL_SIZE:
        idle.append(child)
    # The idle child's frame still holds its outcome: empty it.  An error
    # left in it would hold its traceback, whose frames (this one among
    # them) hold the child: a cycle through a suspended greenlet, which the
    # collector cannot see into, so a child beyond the pool would never be
    # freed, nor anything the failed request held.
    error, value = switched.error, switched.value
    switched.error = switched.value = None
    if error is not None:
        raise error
    return value  # type: ignore[no-any-return]
