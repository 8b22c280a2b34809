"""Tests of the greenlet bridge in aiopyramid.helpers, on a real loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import greenlet
import pytest
from pyramid.exceptions import ConfigurationError

from aiopyramid.exceptions import ScopeError
from aiopyramid.helpers import (
    is_generator,
    run_in_greenlet,
    spawn_greenlet,
    spawn_greenlet_on_scope_error,
    synchronize,
    use_executor,
)
from tests.harness.inprocess import live_spawned_greenlets
from tests.harness.servers import UNIT

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@synchronize
async def double(x: int) -> int:
    """Double x, after letting the loop run."""
    await asyncio.sleep(0)
    return 2 * x


def legacy_triple(x):
    yield from asyncio.sleep(0)
    return 3 * x


class Boom(Exception):
    pass


@synchronize
async def forever() -> None:
    """Wait until cancelled."""
    await asyncio.sleep(3600)


async def explode() -> None:
    await asyncio.sleep(0)
    raise Boom("from the coroutine")


# -- synchronize ------------------------------------------------------------


def test_synchronize_keeps_metadata():
    """The wrapper keeps the coroutine function's name, doc and __wrapped__."""
    assert double.__name__ == "double"
    assert double.__doc__ == "Double x, after letting the loop run."
    assert asyncio.iscoroutinefunction(double.__wrapped__)


def test_synchronize_with_arguments_form(run):
    """@synchronize(strict=True) is the same as @synchronize."""

    @synchronize(strict=True)
    async def one():
        return 1

    assert run(spawn_greenlet(one)) == 1


def test_synchronize_runs_coroutine_in_child_greenlet(run):
    """Called in a child greenlet, a synchronized coroutine returns its result."""
    assert run(spawn_greenlet(double, 21)) == 42


def test_synchronize_accepts_legacy_generator_functions(run):
    """A plain generator function that yields from native coroutines works."""
    assert run(spawn_greenlet(synchronize(legacy_triple), 5)) == 15


def test_synchronize_strict_refuses_plain_functions():
    """strict=True refuses a plain function with a ConfigurationError naming the fix."""
    with pytest.raises(ConfigurationError, match=r"async def.*strict=False"):
        synchronize(lambda: 1)


def test_synchronize_non_strict_calls_plain_functions(run):
    """strict=False accepts a plain function and returns its value anywhere."""
    plain = synchronize(strict=False)(lambda x: x + 1)
    assert plain(1) == 2
    assert run(spawn_greenlet(plain, 2)) == 3


def test_synchronize_raises_with_original_traceback(run):
    """The coroutine's exception reaches the caller with the coroutine's frames."""
    boom = synchronize(explode)

    def caller():
        try:
            boom()
        except Boom as exc:
            return exc
        return None

    exc = run(spawn_greenlet(caller))
    assert isinstance(exc, Boom)
    frames = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "explode" in frames
    assert "caller" in frames


def test_synchronize_in_loop_greenlet_strict_raises_scope_error(run):
    """Strict synchronize called on the loop's greenlet says to await or spawn."""

    async def on_loop():
        with pytest.raises(
            ScopeError, match=r"Await the coroutine directly.*spawn_greenlet"
        ):
            double(1)

    run(on_loop())  # an un-awaited coroutine would fail the run (RuntimeWarning)


def test_synchronize_in_loop_greenlet_non_strict_returns_coroutine(run):
    """Non-strict synchronize on the loop's greenlet hands back the coroutine."""

    @synchronize(strict=False)
    async def seven():
        return 7

    async def on_loop():
        coroutine = seven()
        assert asyncio.iscoroutine(coroutine)
        return await coroutine

    assert run(on_loop()) == 7


def test_synchronize_lets_the_loop_serve_others(run):
    """200 greenlets each waiting 0.2 s finish together, not one after another."""

    @synchronize
    async def nap():
        await asyncio.sleep(0.2)
        return threading.get_ident()

    async def many():
        return await asyncio.gather(*(spawn_greenlet(nap) for _ in range(200)))

    started = time.perf_counter()
    idents = run(many())
    assert time.perf_counter() - started < 2 * UNIT  # one after another: 40 s
    assert set(idents) == {threading.get_ident()}


def test_synchronize_from_executor_thread_blocks_that_thread(run, loop):
    """From a thread of a request, the coroutine runs on the loop; the thread waits."""

    @synchronize
    async def where():
        return threading.get_ident()

    @use_executor
    def in_thread():
        return threading.get_ident(), where()

    thread_id, coroutine_thread = run(in_thread())
    assert thread_id != threading.get_ident()
    assert coroutine_thread == threading.get_ident()


def test_synchronize_from_foreign_thread_raises_scope_error():
    """A thread with no loop to use gets a ScopeError saying what to do."""
    errors = []

    def worker():
        try:
            double(1)
        except ScopeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors and "asyncio.run()" in errors[0]


def test_synchronize_under_a_parent_that_ignores_switches(run, loop):
    """In a greenlet we did not spawn (as uWSGI's), a task's callback resumes it."""
    done: asyncio.Future[Any] = loop.create_future()

    def request():
        var.set("request's own")
        try:
            result = (double(4), var.get(), read_var())
        except BaseException as exc:  # pragma: no cover - reported below
            done.set_exception(exc)
        else:
            done.set_result(result)

    @synchronize
    async def read_var():
        await asyncio.sleep(0.01)
        return var.get()

    async def server():
        # Like uWSGI: start the request greenlet, ignore what it switches up.
        foreign = greenlet.greenlet(request)
        ignored = foreign.switch()
        assert ignored == ()
        return await done

    assert run(server()) == (8, "request's own", "request's own")


def test_synchronize_foreign_greenlet_gets_exception(run, loop):
    """The callback path delivers the coroutine's exception into the greenlet."""
    done: asyncio.Future[Any] = loop.create_future()
    boom = synchronize(explode)

    def request():
        try:
            boom()
        except Boom as exc:
            done.set_result(exc)

    async def server():
        greenlet.greenlet(request).switch()
        return await done

    assert isinstance(run(server()), Boom)


# -- spawn_greenlet ------------------------------------------------------------


def test_spawn_greenlet_passes_arguments_and_returns(run):
    """spawn_greenlet calls func with args and kwargs and resolves to its value."""
    assert run(spawn_greenlet(lambda a, b=0: a - b, 10, b=3)) == 7


def test_spawn_greenlet_raises_the_functions_exception(run):
    """An exception in the child is raised by the awaitable."""

    def fail():
        raise Boom("child")

    with pytest.raises(Boom, match="child"):
        run(spawn_greenlet(fail))


def test_spawn_greenlet_awaits_futures_switched_up(run, loop):
    """A child that switches a future to its parent gets the future's result."""

    def child():
        future = loop.create_future()
        loop.call_later(0.01, future.set_result, "settled")
        return greenlet.getcurrent().parent.switch(future)

    assert run(spawn_greenlet(child)) == "settled"


def test_spawn_greenlet_non_future_ends_the_wait(run):
    """Switching up a value that is not awaitable ends the wait with that value."""

    def child():
        greenlet.getcurrent().parent.switch("early")
        return "never"  # pragma: no cover

    assert run(spawn_greenlet(child)) == "early"


def test_spawn_greenlet_copies_context(run):
    """The child sees the caller's context variables; its own stay with it."""

    def child():
        seen = var.get()
        var.set("child")
        return seen, var.get()

    async def caller():
        var.set("caller")
        result = await spawn_greenlet(child)
        return result, var.get()

    assert run(caller()) == (("caller", "child"), "caller")


def test_awaited_coroutine_shares_greenlets_context(run):
    """A coroutine waited for by a greenlet sees the greenlet's context variables."""

    @synchronize
    async def read():
        return var.get()

    def child():
        var.set("set in greenlet")
        return read()

    assert run(spawn_greenlet(child)) == "set in greenlet"


def test_cancellation_unwinds_the_child(run, loop):
    """Cancelling the awaiting task raises CancelledError at the waiting point."""
    events = []
    waiting = asyncio.Event()

    def child():
        try:
            waiting.set()  # and on at once to the waiting point
            forever()
        except asyncio.CancelledError:
            events.append("cancelled at the waiting point")
            raise
        finally:
            events.append("finally ran")

    async def scenario():
        task = asyncio.ensure_future(spawn_greenlet(child))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert events == ["cancelled at the waiting point", "finally ran"]
    assert live_spawned_greenlets() == []
    assert not asyncio.all_tasks(loop)


def test_child_may_survive_cancellation(run):
    """A child that handles the cancellation may go on and return a value."""

    waiting = asyncio.Event()

    def child():
        try:
            waiting.set()  # and on at once to the waiting point
            forever()
        except asyncio.CancelledError:
            return double(2)
        return None  # pragma: no cover

    async def scenario():
        task = asyncio.ensure_future(spawn_greenlet(child))
        await waiting.wait()
        task.cancel()
        return await task

    assert run(scenario()) == 4


# -- run_in_greenlet -------------------------------------------------------------


@pytest.mark.parametrize(
    ("func", "expected"),
    [(lambda: asyncio.sleep(0, "value"), "value"), (explode, Boom)],
)
def test_run_in_greenlet_settles_future_and_switches_back(run, loop, func, expected):
    """run_in_greenlet puts the outcome in the future and resumes the greenlet."""
    outcome = []

    def waiter(future):
        greenlet.getcurrent().parent.switch()
        try:
            outcome.append(future.result())
        except Boom as exc:
            outcome.append(type(exc))

    async def scenario():
        future = loop.create_future()
        back = greenlet.greenlet(waiter)
        back.switch(future)
        await run_in_greenlet(back, future, func)

    run(scenario())
    assert outcome == [expected]


def test_run_in_greenlet_cancelled_work_cancels_future(run, loop):
    """Cancelled work leaves the future cancelled, and a dead greenlet is skipped."""

    async def scenario():
        future = loop.create_future()
        dead = greenlet.greenlet(lambda: None)
        dead.switch()
        task = loop.create_task(run_in_greenlet(dead, future, asyncio.sleep, 3600))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
        return future.cancelled()

    assert run(scenario())


# -- is_generator --------------------------------------------------------------


async def native():
    return 1


def generator():
    yield


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (native, True),
        (generator, True),
        (functools.partial(native), True),
        (lambda: None, False),
        (len, False),
        (object(), False),
    ],
)
def test_is_generator(obj, expected):
    """is_generator tells coroutine makers from plain callables."""
    assert is_generator(obj) is expected


def test_is_generator_on_objects(loop):
    """Coroutine objects, generators and futures count; the coroutine is closed."""
    coroutine = native()
    try:
        assert is_generator(coroutine)
    finally:
        coroutine.close()
    assert is_generator(generator())
    assert is_generator(loop.create_future())


# -- use_executor ----------------------------------------------------------------


def test_use_executor_runs_in_given_executor_with_context(run):
    """@use_executor(executor=...) runs on that pool with the caller's context."""
    with ThreadPoolExecutor(1, thread_name_prefix="mine") as pool:

        @use_executor(executor=pool)
        def blocking(x):
            time.sleep(0.01)
            return x, threading.current_thread().name, var.get()

        async def caller():
            var.set("from caller")
            return await blocking(3)

        value, name, seen = run(caller())
    assert value == 3
    assert name.startswith("mine")
    assert seen == "from caller"


# -- spawn_greenlet_on_scope_error ----------------------------------------------


@spawn_greenlet_on_scope_error
def needs_greenlet(x):
    return double(x)


def test_spawn_on_scope_error_in_greenlet_returns_value(run):
    """In a child greenlet, the wrapper just returns the function's value."""
    assert run(spawn_greenlet(needs_greenlet, 2)) == 4


def test_spawn_on_scope_error_on_loop_returns_awaitable(run):
    """On the loop's greenlet, the wrapper returns an awaitable of the value."""

    async def on_loop():
        return await needs_greenlet(5)

    assert run(on_loop()) == 10


def test_spawn_on_scope_error_elsewhere_reraises():
    """Where no loop runs at all, the ScopeError is not hidden."""
    with pytest.raises(ScopeError):
        needs_greenlet(1)


def test_non_strict_in_child_greenlet_waits(run):
    """Non-strict synchronize waits for the coroutine in a child greenlet."""

    @synchronize(strict=False)
    async def eight():
        await asyncio.sleep(0)
        return 8

    assert run(spawn_greenlet(eight)) == 8


class LegacyCallable:
    def __call__(self, x):
        yield from asyncio.sleep(0)
        return x

    def method(self, x):
        yield from asyncio.sleep(0)
        return -x


def test_allow_yield_from_reaches_behind_methods_partials_and_instances(run):
    """Legacy generators behind methods, partials and instances get flagged."""
    from aiopyramid._unwrap import allow_yield_from

    instance = LegacyCallable()
    allow_yield_from(instance)
    allow_yield_from(functools.partial(instance.method, 1))
    allow_yield_from(None)  # not callable: ignored

    async def both():
        return await instance(2), await instance.method(3)

    assert run(both()) == (2, -3)
