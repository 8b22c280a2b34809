"""A coroutine waited for from a request's greenlet runs in that greenlet (issue 16).

Plain code in a request's greenlet that waits for a coroutine (a coroutine
view, a ``@synchronize`` function) runs the coroutine's steps right there;
the loop is involved only when the coroutine really waits, and then only to
await what it waits on.  These tests pin down what that must not change:
every step sees the task, context and rules of the loop's own coroutines,
and a coroutine stays in one greenlet from start to end (libraries such as
SQLAlchemy's asyncio API rely on that).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import types
import weakref

import greenlet
import pytest

from aiopyramid._bridge import in_loop_greenlet, wait_for
from aiopyramid.exceptions import ScopeError
from aiopyramid.helpers import run_in_greenlet, spawn_greenlet, synchronize
from tests.harness.inprocess import live_spawned_greenlets

var: contextvars.ContextVar[str] = contextvars.ContextVar("first_step_var", default="")


async def immediate(value: object) -> object:
    """A coroutine that never waits."""
    return value


async def after_a_turn(value: object) -> object:
    """A coroutine that waits one turn of the loop."""
    await asyncio.sleep(0)
    return value


def test_a_coroutine_that_never_waits_takes_no_turn_of_the_loop(run, loop):
    turns: list[int] = []

    def plain() -> tuple[object, list[int]]:
        loop.call_soon(turns.append, 1)
        value = wait_for(immediate("done"))
        return value, list(turns)

    assert run(spawn_greenlet(plain)) == ("done", [])
    assert turns == [1]  # the loop ran it afterwards, as it should


def test_a_coroutine_that_waits_lets_the_loop_turn(run, loop):
    turns: list[int] = []

    def plain() -> tuple[object, list[int]]:
        loop.call_soon(turns.append, 1)
        return wait_for(after_a_turn("done")), list(turns)

    assert run(spawn_greenlet(plain)) == ("done", [1])


def test_every_step_sees_the_task_context_and_loop_greenlet_rules(run):
    seen: list[tuple[object, bool]] = []

    async def view() -> str:
        seen.append((asyncio.current_task(), in_loop_greenlet()))
        var.set("set in the first step")
        await asyncio.sleep(0)
        seen.append((asyncio.current_task(), in_loop_greenlet()))
        return var.get()

    value, after = run(spawn_greenlet(lambda: (wait_for(view()), var.get())))
    assert value == after == "set in the first step"
    (first_task, first_rule), (later_task, later_rule) = seen
    assert first_task is later_task is not None  # spawn_greenlet's task
    assert first_rule is later_rule is True


@pytest.mark.parametrize("turn_first", [False, True], ids=["first step", "later step"])
def test_waiting_inside_a_step_is_a_scope_error_in_every_step(run, turn_first):
    @synchronize
    async def helper() -> int:
        return 1

    async def view() -> int:
        if turn_first:
            await asyncio.sleep(0)
        return helper()

    with pytest.raises(ScopeError, match="greenlet that runs the event loop"):
        run(spawn_greenlet(wait_for, view()))


def test_non_strict_synchronize_returns_the_coroutine_in_the_first_step(run):
    @synchronize(strict=False)
    async def helper() -> int:
        return 7

    async def view() -> int:
        pending = helper()
        assert isinstance(pending, types.CoroutineType)
        return await pending

    assert run(spawn_greenlet(wait_for, view())) == 7


def test_a_greenlet_spawned_in_the_first_step_may_wait_across_turns(run):
    def fetch(x: int) -> int:
        return wait_for(after_a_turn(x)) * 2  # type: ignore[operator]

    async def view() -> list[int]:
        first = await spawn_greenlet(fetch, 1)  # spawned during the first step
        second = await spawn_greenlet(fetch, 2)  # and after a turn
        return [first, second]

    def request() -> tuple[list[int], object]:
        values = wait_for(view())
        # The request's greenlet drove a spawned greenlet during its first
        # step: it must not be taken for a loop greenlet afterwards.
        return values, wait_for(after_a_turn("still waits"))

    assert run(spawn_greenlet(request)) == ([2, 4], "still waits")
    assert live_spawned_greenlets() == []


def test_the_original_hand_off_works_from_a_greenlet_spawned_in_a_first_step(run):
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    def by_hand(x: int) -> int:
        this = greenlet.getcurrent()
        future = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(run_in_greenlet(this, future, fetch, x))
        this.parent.switch(task)
        return future.result() * 10  # type: ignore[no-any-return]

    async def view() -> int:
        return await spawn_greenlet(by_hand, 4)

    assert run(spawn_greenlet(wait_for, view())) == 50


def test_errors_of_either_step_reach_the_waiting_code(run):
    async def fails_at_once() -> None:
        raise KeyError("first")

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    for coroutine, text in ((fails_at_once, "first"), (fails_later, "later")):
        with pytest.raises(KeyError, match=text):
            run(spawn_greenlet(wait_for, coroutine()))


def test_cancelling_the_task_reaches_the_coroutine_after_its_first_step(run, loop):
    cleaned: list[str] = []

    async def view() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append("view")

    async def main() -> None:
        task = asyncio.ensure_future(spawn_greenlet(wait_for, view()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert cleaned == ["view"]
    assert live_spawned_greenlets() == []


def test_legacy_generator_coroutines_take_their_first_step_too(run, loop):
    turns: list[int] = []

    @types.coroutine
    def legacy(x: int):  # type: ignore[no-untyped-def]
        if x:
            yield from asyncio.sleep(0)
        return x * 3

    def plain() -> tuple[int, int, list[int]]:
        loop.call_soon(turns.append, 1)
        at_once = wait_for(legacy(0))
        seen = list(turns)
        return at_once, wait_for(legacy(2)), seen

    assert run(spawn_greenlet(plain)) == (0, 6, [])


@pytest.mark.database
def test_sqlalchemy_asyncio_works_across_many_waits(run):
    """SQLAlchemy's asyncio API spawns greenlets under the one running the coroutine."""
    sqlalchemy = pytest.importorskip("sqlalchemy.ext.asyncio")
    pytest.importorskip("aiosqlite")
    from sqlalchemy import text

    async def view() -> list[int]:
        engine = sqlalchemy.create_async_engine("sqlite+aiosqlite://")
        try:
            async with engine.connect() as connection:
                await connection.execute(text("create table t (x integer)"))
                for x in range(5):
                    await connection.execute(
                        text("insert into t values (:x)"), {"x": x}
                    )
                    await asyncio.sleep(0)
                rows = await connection.execute(text("select x from t order by x"))
                return [row[0] for row in rows]
        finally:
            await engine.dispose()

    assert run(spawn_greenlet(wait_for, view())) == [0, 1, 2, 3, 4]
    assert live_spawned_greenlets() == []


class Job:
    """Something a job holds, whose freeing a weak reference tells."""


def test_an_idle_child_keeps_nothing_of_its_first_job(run):
    """A pooled child holds neither the arguments it started with nor its result."""
    from aiopyramid._greenlets import run_in_child_greenlet

    held = Job()
    alive = weakref.ref(held)

    def job(argument: Job) -> Job:
        return argument

    assert run(run_in_child_greenlet(job, held)) is held
    del held
    gc.collect()
    assert alive() is None


def test_failed_jobs_beyond_the_pool_are_freed(run):
    """Children that failed while the pool was full are freed with their errors."""
    from aiopyramid._greenlets import SpawnedGreenlet, run_in_child_greenlet

    held: list[weakref.ref[Job]] = []

    def failing(gate: asyncio.Future[None]) -> None:
        job = Job()
        held.append(weakref.ref(job))
        wait_for(gate)  # all of them at once: more than the pool takes
        raise RuntimeError(job)

    async def many() -> None:
        gate = asyncio.get_running_loop().create_future()
        calls = [run_in_child_greenlet(failing, gate) for _ in range(400)]
        waiting = asyncio.gather(*calls, return_exceptions=True)
        await asyncio.sleep(0)
        gate.set_result(None)
        errors = await waiting
        assert all(isinstance(error, RuntimeError) for error in errors)

    run(many())
    gc.collect()
    assert [ref for ref in held if ref() is not None] == []
    children = [g for g in gc.get_objects() if type(g) is SpawnedGreenlet]
    assert len(children) <= 256 + 1  # the pool, and none of the failed ones
