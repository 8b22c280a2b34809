"""The aiopyramid.debug.slow_callback_ms setting, in process on a real loop."""

from __future__ import annotations

import asyncio
import logging
import time
import types

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid.response import Response

from aiopyramid.helpers import synchronize
from tests.harness.inprocess import get, make_app
from tests.harness.servers import UNIT

#: The threshold, far above what a step that holds nothing takes on a loaded
#: machine, and how long the hogging views hold the loop: twice that.
THRESHOLD_MS = int(100 * UNIT)
HOLD = 2 * THRESHOLD_MS / 1000
SLOW = {"aiopyramid.debug.slow_callback_ms": str(THRESHOLD_MS)}


async def hog(request):
    """Hold the loop in the coroutine's second step."""
    await asyncio.sleep(0)
    time.sleep(HOLD)
    return Response("hogged")


async def polite(request):
    """Wait without holding the loop."""
    await asyncio.sleep(HOLD)
    return Response("waited")


async def failing(request):
    """Hold the loop, then fail."""
    await asyncio.sleep(0)
    time.sleep(HOLD)
    raise ValueError("failed after hogging")


def legacy(request):
    """A 2014-style generator view holding the loop."""
    yield from asyncio.sleep(0)
    time.sleep(HOLD)
    return Response("legacy")


class SlowInit:
    """A class view whose constructor (run in the greenlet) holds the loop."""

    def __init__(self, request):
        time.sleep(HOLD)
        self.request = request

    async def __call__(self):
        return Response("constructed")


def setup(config):
    """Routes for each view above."""
    for view in (hog, polite, failing, legacy, SlowInit):
        name = view.__name__
        config.add_route(name, f"/{name}")
        config.add_view(view, route_name=name)


def slow_lines(caplog) -> list[str]:
    """Messages of the aiopyramid.slow logger."""
    return [r.getMessage() for r in caplog.records if r.name == "aiopyramid.slow"]


@pytest.mark.parametrize(
    ("path", "name", "status"),
    [
        ("/hog", "hog", 200),
        ("/failing", "failing", None),
        ("/legacy", "legacy", 200),
        ("/SlowInit", "SlowInit", 200),
    ],
)
def test_a_step_over_the_limit_is_logged_with_the_views_name(
    run, caplog, path, name, status
):
    """Each view holding the loop too long is logged once by name, however it ends."""
    app = make_app(setup, **SLOW)
    with caplog.at_level(logging.WARNING, "aiopyramid.slow"):
        if status is None:  # no exception view: the error leaves the app
            with pytest.raises(ValueError, match="failed after hogging"):
                run(get(app, path))
        else:
            assert run(get(app, path)).status_code == status
    lines = slow_lines(caplog)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"coroutine view {name} held the event loop for ")
    assert f"aiopyramid.debug.slow_callback_ms = {THRESHOLD_MS}" in lines[0]


def test_waiting_is_not_holding(run, caplog):
    """A view that awaits holds the loop for none of it: nothing is logged."""
    app = make_app(setup, **SLOW)
    with caplog.at_level(logging.WARNING, "aiopyramid.slow"):
        assert run(get(app, "/polite")).text == "waited"
    assert slow_lines(caplog) == []


def test_without_the_setting_nothing_is_timed(run, caplog):
    """Without the setting, views are mapped as before and nothing is logged."""
    app = make_app(setup)
    with caplog.at_level(logging.WARNING, "aiopyramid.slow"):
        assert run(get(app, "/hog")).text == "hogged"
    assert slow_lines(caplog) == []


def test_cancellation_reaches_a_timed_view(run):
    """Cancelling the request throws CancelledError into the view at its await."""
    seen = []
    waiting = asyncio.Event()

    async def waits(request):
        try:
            waiting.set()
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return Response("never")

    def setup_waits(config):
        config.add_route("waits", "/waits")
        config.add_view(waits, route_name="waits")

    app = make_app(setup_waits, **SLOW)

    async def main():
        task = asyncio.ensure_future(get(app, "/waits"))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert seen == ["cancelled"]


def test_closing_a_timed_coroutine_closes_the_view():
    """Closing the timing wrapper closes the view's coroutine (its finally runs)."""
    from aiopyramid._slow_views import timed_steps

    closed = []

    @types.coroutine
    def pause():
        yield

    async def view():
        try:
            await pause()
        finally:
            closed.append(True)

    steps = timed_steps(view(), "view", 1.0)
    steps.send(None)  # runs up to the pause
    steps.close()
    assert closed == [True]


def test_a_synchronized_view_wrapper_is_timed_too(run, caplog):
    """A plain function wrapping a coroutine view is timed at its call."""

    @synchronize
    async def hogging():
        time.sleep(HOLD)

    async def view(request):
        return Response("wrapped")

    def wrapper(request):
        hogging()
        return view(request)

    wrapper.__wrapped__ = view

    def setup_wrapped(config):
        config.add_route("wrapped", "/wrapped")
        config.add_view(wrapper, route_name="wrapped")

    app = make_app(setup_wrapped, **SLOW)
    with caplog.at_level(logging.WARNING, "aiopyramid.slow"):
        assert run(get(app, "/wrapped")).text == "wrapped"
    assert len(slow_lines(caplog)) == 1


def test_a_wrapper_that_waits_by_itself_is_timed(run, caplog):
    """A wrapper returning the coroutine view's response itself is timed at its call."""

    async def view(context, request):
        time.sleep(HOLD)
        return Response("waited inside")

    waiting = synchronize(view)

    def setup_waiting(config):
        config.add_route("waiting", "/waiting")
        config.add_view(waiting, route_name="waiting")

    app = make_app(setup_waiting, **SLOW)
    with caplog.at_level(logging.WARNING, "aiopyramid.slow"):
        assert run(get(app, "/waiting")).text == "waited inside"
    assert len(slow_lines(caplog)) == 1


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_setting_fails_at_configuration(value):
    """A value that is not a positive number fails at config.include, naming the fix."""
    with pytest.raises(ConfigurationError) as error:
        make_app(lambda config: None, **{"aiopyramid.debug.slow_callback_ms": value})
    assert "aiopyramid.debug.slow_callback_ms must be a positive number" in str(
        error.value
    )
