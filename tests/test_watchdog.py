"""The loop watchdog, on real loops with real threads, and under gunicorn."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import greenlet
import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.response import Response
from webob import Request

from aiopyramid import _watchdog
from aiopyramid._watchdog import (
    SETTING,
    ensure_watched,
    threshold_from_settings,
    watch,
    watched_stalls,
)
from aiopyramid.asgi import make_asgi_app
from tests.harness.asgi_client import http_scope, websocket_scope
from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    require_module,
    running,
    wait_until,
)

#: The threshold of these tests; the heartbeat runs every quarter of it.
THRESHOLD = 0.3 * UNIT
INTERVAL = THRESHOLD / 4
#: How long a test holds the loop: three thresholds.
HOLD = 3 * THRESHOLD


class Recorder(logging.Handler):
    """Keeps each record of the watchdog's logger with when it was emitted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[float, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.monotonic(), record))

    def at(self, level: int) -> list[tuple[float, logging.LogRecord]]:
        """The records at ``level``, with their times."""
        return [(t, r) for t, r in self.records if r.levelno == level]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """What the ``aiopyramid.watchdog`` logger emits during the test."""
    logger = logging.getLogger("aiopyramid.watchdog")
    handler = Recorder()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def watchdog_threads() -> list[threading.Thread]:
    """The watchdog's threads alive in this process (one at most)."""
    return [t for t in threading.enumerate() if t.name == "aiopyramid-watchdog"]


def hold_the_loop(times: dict[str, float]) -> None:
    """A callback that blocks the loop's thread for HOLD seconds."""
    times["start"] = time.monotonic()
    time.sleep(HOLD)
    times["end"] = time.monotonic()


async def held_once(loop: asyncio.AbstractEventLoop) -> dict[str, float]:
    """Hold ``loop`` once with :func:`hold_the_loop`; return when, and when back."""
    times: dict[str, float] = {}
    await asyncio.sleep(INTERVAL * 2)  # a few heartbeats first
    loop.call_soon(hold_the_loop, times)
    await asyncio.sleep(0)  # the hold runs before this task resumes
    # Overdue once the hold ends, the heartbeat runs in the next turn.
    await asyncio.sleep(INTERVAL * 2)
    times["back"] = time.monotonic()
    return times


def test_a_held_loop_is_reported_while_it_is_held(loop, recorder):
    """The warning comes before the hold ends, with the holding frame and the fix."""
    watch(loop, THRESHOLD)
    times = loop.run_until_complete(held_once(loop))
    warnings = recorder.at(logging.WARNING)
    assert len(warnings) == 1, [r.getMessage() for _, r in recorder.records]
    emitted, record = warnings[0]
    assert times["start"] < emitted < times["end"]
    message = record.getMessage()
    assert "in hold_the_loop\n    time.sleep(HOLD)" in message
    assert f"{SETTING} = {THRESHOLD:g}" in message
    assert "aiopyramid.mode = thread" in message
    assert "aiopyramid.mode = greenlet" in message
    assert record.name == "aiopyramid.watchdog"
    (freed, info), *others = recorder.at(logging.INFO)
    assert others == []
    assert times["end"] <= freed <= times["back"]
    assert "free again after" in info.getMessage()


def test_one_report_per_stall(loop, recorder):
    """Two holds of three thresholds each give two warnings and two infos, in turn."""
    watch(loop, THRESHOLD)

    async def twice() -> None:
        await held_once(loop)
        await held_once(loop)

    loop.run_until_complete(twice())
    levels = [r.levelno for _, r in recorder.records]
    assert levels == [logging.WARNING, logging.INFO] * 2


def test_a_loop_never_held_past_the_threshold_logs_nothing(loop, recorder):
    """Two seconds of short callbacks (a twentieth of the threshold) log nothing."""
    watch(loop, THRESHOLD)
    calls = 0

    def short() -> None:
        nonlocal calls
        calls += 1
        time.sleep(THRESHOLD / 20)

    async def busy() -> None:
        deadline = time.monotonic() + 2 * UNIT
        while time.monotonic() < deadline:
            for _ in range(3):
                loop.call_soon(short)
            await asyncio.sleep(0)  # a turn with three ready callbacks
            await asyncio.sleep(0.001)  # and one that waits

    loop.run_until_complete(busy())
    assert calls > 20
    assert recorder.records == []
    # The heartbeat waits for a turn or two of short callbacks at most.
    assert watched_stalls(loop) < THRESHOLD


def test_max_stall_is_the_hold(loop):
    """max_stall is the hold, give or take the heartbeat's interval."""
    watch(loop, THRESHOLD)
    assert watched_stalls(loop) < THRESHOLD
    times = loop.run_until_complete(held_once(loop))
    stall = watched_stalls(loop)
    held = times["end"] - times["start"]
    assert held - INTERVAL <= stall <= times["back"] - times["start"] + INTERVAL


def test_a_stall_holding_the_gil_is_reported_when_it_ends(loop, recorder):
    """Code that never lets the GIL go is reported once, by the heartbeat, after."""
    watch(loop, THRESHOLD)
    times: dict[str, float] = {}

    def spin() -> None:
        # Pure Python with a switch interval longer than the hold: no other
        # thread gets the GIL until the loop waits again, as with a C
        # extension that holds it.
        times["start"] = time.monotonic()
        while time.monotonic() - times["start"] < HOLD:
            pass

    async def hold() -> None:
        await asyncio.sleep(INTERVAL * 2)
        loop.call_soon(spin)
        await asyncio.sleep(INTERVAL * 2)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(10 * HOLD)
    try:
        loop.run_until_complete(hold())
    finally:
        sys.setswitchinterval(interval)
    ((_, record),) = recorder.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "came back before the watchdog could take its thread's stack" in message
    assert "aiopyramid.mode = thread" in message
    assert watched_stalls(loop) >= HOLD - INTERVAL


def test_a_watchdog_that_overslept_waits_a_round(loop, recorder):
    """A check made late by the GIL reports nothing; the next, on time, does."""
    watched = _watchdog._Watch(loop, THRESHOLD)  # not patrolled: checked here
    quiet: list[bool] = []

    def checks() -> None:
        time.sleep(THRESHOLD + 3 * INTERVAL)  # the loop is held past the threshold
        watched.check(time.monotonic(), overslept=HOLD)
        quiet.append(recorder.records == [])
        watched.check(time.monotonic(), overslept=0.0)

    async def hold() -> None:
        thread = threading.Thread(target=checks)
        thread.start()
        time.sleep(HOLD)  # still held when both checks are made
        thread.join()
        await asyncio.sleep(INTERVAL * 2)  # the heartbeat comes back

    loop.run_until_complete(hold())
    assert quiet == [True]
    levels = [r.levelno for _, r in recorder.records]
    assert levels == [logging.WARNING, logging.INFO]
    assert "in hold\n    time.sleep(HOLD)" in recorder.records[0][1].getMessage()


def test_a_stopped_loop_is_not_a_held_one(loop, recorder):
    """Between run_until_complete calls the loop runs nothing: nothing is reported."""
    watch(loop, THRESHOLD)
    loop.run_until_complete(asyncio.sleep(INTERVAL))
    time.sleep(HOLD)  # the loop is not running: nobody waits for it
    loop.run_until_complete(asyncio.sleep(INTERVAL * 2))
    assert recorder.records == []
    assert watched_stalls(loop) < THRESHOLD


def test_off_means_no_heartbeat_and_no_thread(loop, recorder, monkeypatch):
    """With the setting off, nothing is scheduled on the loop and no thread starts."""
    wait_until(lambda: not watchdog_threads(), 5)  # earlier tests' loops are closed
    scheduled: list[Any] = []
    call_later = loop.call_later
    monkeypatch.setattr(
        loop, "call_later", lambda *a, **k: scheduled.append(a) or call_later(*a, **k)
    )
    config = Configurator(settings={SETTING: "off"})
    config.include("aiopyramid")
    registry = config.registry

    async def serve() -> None:
        ensure_watched(registry)
        await asyncio.sleep(0)
        hold_the_loop({})

    loop.run_until_complete(serve())
    watch(loop, 0)
    watch(loop, None)
    assert scheduled == []
    assert watchdog_threads() == []
    assert recorder.records == []
    assert watched_stalls(loop) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 1.0),
        ("", 1.0),
        ("0.25", 0.25),
        (2, 2.0),
        ("0", None),
        (0, None),
        ("off", None),
        (" Off ", None),
        ("false", None),
        ("none", None),
    ],
)
def test_setting_values(value, expected):
    """The setting defaults to one second; 0, off, false and none turn it off."""
    settings = {} if value is None else {SETTING: value}
    assert threshold_from_settings(settings) == expected


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", "1s"])
def test_a_bad_setting_fails_at_configuration_time(value):
    """include('aiopyramid') refuses a bad value, naming it and what to write."""
    config = Configurator(settings={SETTING: value})
    with pytest.raises(ConfigurationError) as raised:
        config.include("aiopyramid")
    message = str(raised.value)
    assert f"{SETTING} must be a number of seconds, not {value!r}." in message
    assert f"Write e.g. {SETTING} = 1 (the default)" in message
    assert f"{SETTING} = off to turn the loop watchdog off" in message


def test_a_closed_loop_is_forgotten_and_freed(recorder, monkeypatch):
    """A closed loop is dropped without errors, collected, and the thread exits."""
    errors: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    wait_until(lambda: not watchdog_threads(), 5)
    loop = asyncio.new_event_loop()
    watch(loop, THRESHOLD)
    (thread,) = watchdog_threads()
    loop.run_until_complete(asyncio.sleep(INTERVAL * 2))
    freed = weakref.ref(loop)
    loop.close()
    wait_until(lambda: freed() not in _watchdog._watches, 5)
    assert watched_stalls(loop) == 0.0
    watch(loop, THRESHOLD)  # a closed loop is not watched again
    assert loop not in _watchdog._watches
    del loop
    gc.collect()
    assert freed() is None
    thread.join(5 * UNIT)
    assert not thread.is_alive()
    assert errors == []
    assert recorder.records == []


def test_a_collected_loop_is_dropped():
    """A loop that is closed and collected while watched leaves nothing behind."""
    wait_until(lambda: not watchdog_threads(), 5)
    loop = asyncio.new_event_loop()
    watch(loop, THRESHOLD)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    del loop
    gc.collect()
    assert len(_watchdog._watches) == 0
    wait_until(lambda: not watchdog_threads(), 5)


def test_watch_is_idempotent_and_takes_a_new_threshold(loop, recorder, monkeypatch):
    """Watching twice keeps one heartbeat; a new threshold applies; 0 stops."""
    scheduled: list[Any] = []
    call_later = loop.call_later
    monkeypatch.setattr(
        loop, "call_later", lambda *a, **k: scheduled.append(a) or call_later(*a, **k)
    )
    watch(loop, THRESHOLD)
    watch(loop, THRESHOLD)
    assert len(scheduled) == 1
    monkeypatch.undo()
    watch(loop, 10 * THRESHOLD)  # holds of HOLD no longer count
    loop.run_until_complete(held_once(loop))
    assert recorder.records == []
    watch(loop, 0)
    assert loop not in _watchdog._watches
    loop.run_until_complete(held_once(loop))
    assert recorder.records == []


def test_ensure_watched_uses_the_registry_once_per_loop(loop, recorder):
    """The registry's threshold applies to the running loop, looked up once."""
    config = Configurator(settings={SETTING: str(THRESHOLD)})
    config.include("aiopyramid")
    other = Configurator(settings={SETTING: "off"})
    other.include("aiopyramid")

    async def serve() -> None:
        ensure_watched(config.registry)
        ensure_watched(other.registry)  # the loop is known: nothing changes
        await held_once(loop)

    loop.run_until_complete(serve())
    assert _watchdog._watches[loop].seconds == THRESHOLD
    assert len(recorder.at(logging.WARNING)) == 1


def test_an_app_without_aiopyramid_is_not_watched(loop):
    """A registry that never included aiopyramid leaves the loop unwatched."""
    registry = Configurator().registry

    async def serve() -> None:
        ensure_watched(registry)

    loop.run_until_complete(serve())
    assert loop not in _watchdog._watches


def blocking_factory(request: Any) -> object:
    """A route factory that blocks (as a pool waiting for a connection does)."""
    time.sleep(HOLD)
    return object()


async def after_the_factory(request: Any) -> Response:
    """A coroutine view behind the blocking factory."""
    return Response("served")


def factory_app() -> Any:
    """An app whose one route has a blocking factory."""
    config = Configurator(settings={SETTING: str(THRESHOLD)})
    config.include("aiopyramid")
    config.add_route("x", "/x", factory=blocking_factory)
    config.add_view(after_the_factory, route_name="x")
    return config.make_wsgi_app()


async def get_x(app: Any) -> list[dict[str, Any]]:
    """GET /x through the ASGI application ``app``; return what it sent."""
    sent: list[dict[str, Any]] = []
    request = http_scope("/x", [(b"host", b"example.org")])

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)  # the client waits for its answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(request, receive, send)
    return sent


def test_the_asgi_bridge_watches_its_loop_from_the_first_request(loop, recorder):
    """Through the ASGI bridge, a blocking route factory is named while it blocks."""
    bridge = make_asgi_app(factory_app())
    started = time.monotonic()
    sent = loop.run_until_complete(get_x(bridge))
    ended = time.monotonic()
    assert sent[0]["status"] == 200
    (emitted, record), *_ = recorder.at(logging.WARNING)
    assert started < emitted < ended
    assert "in blocking_factory\n    time.sleep(HOLD)" in record.getMessage()


def test_lifespan_startup_watches_the_loop(loop):
    """The lifespan's startup watches the loop before any request."""
    bridge = make_asgi_app(factory_app())
    incoming = [{"type": "lifespan.startup"}]
    watched = loop.create_future()

    async def receive() -> dict[str, str]:
        if incoming:
            return incoming.pop()
        watched.set_result(loop in _watchdog._watches)
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, str]) -> None:
        pass

    loop.run_until_complete(bridge({"type": "lifespan"}, receive, send))
    assert watched.result() is True


def test_a_websocket_watches_the_loop(loop):
    """A websocket served by the bridge watches its loop, with no lifespan or HTTP."""
    bridge = make_asgi_app(factory_app())
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop() if incoming else {"type": "websocket.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    loop.run_until_complete(bridge(websocket_scope("/nowhere"), receive, send))
    assert _watchdog._watches[loop].seconds == THRESHOLD


def test_a_foreign_request_greenlet_watches_its_loop(loop, recorder):
    """As under uWSGI (a greenlet not ours runs the request), the loop is watched."""
    app = factory_app()
    done = loop.create_future()

    def request() -> None:
        done.set_result(Request.blank("/x").get_response(app))

    async def server() -> Any:
        greenlet.greenlet(request).switch()  # ignores what it switches up
        return await done

    response = loop.run_until_complete(server())
    assert response.text == "served"
    # The factory held the loop before the request's first wait, when the
    # loop was not watched yet: that stall goes unseen.  From then on the
    # loop is watched with the threshold of the request's registry.
    assert recorder.records == []
    assert _watchdog._watches[loop].seconds == THRESHOLD
    times = loop.run_until_complete(held_once(loop))
    ((emitted, _),) = recorder.at(logging.WARNING)
    assert times["start"] < emitted < times["end"]


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_watches_afresh(loop):
    """In a child forked while the watchdog runs, watching works (no lock held)."""
    watch(loop, THRESHOLD)
    loop.run_until_complete(asyncio.sleep(INTERVAL))
    pid = os.fork()
    if pid == 0:  # the child: exit with 0 only if its own hold is reported
        code = 1
        try:
            records: list[logging.LogRecord] = []
            handler = logging.Handler()
            handler.emit = records.append  # type: ignore[method-assign]
            logging.getLogger("aiopyramid.watchdog").addHandler(handler)
            logging.getLogger("aiopyramid.watchdog").setLevel(logging.DEBUG)
            child_loop = asyncio.new_event_loop()
            watch(child_loop, THRESHOLD)
            child_loop.run_until_complete(held_once(child_loop))
            levels = [r.levelno for r in records]
            code = 0 if levels == [logging.WARNING, logging.INFO] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.server
def test_the_gunicorn_worker_logs_a_held_loop_while_it_is_held():
    """The worker's log names the holding view while its request still runs."""
    for name in ("gunicorn", "httpx"):
        require_module(name)
    httpx = import_required("httpx")
    port = free_port()
    command = gunicorn_command("--bind", f"127.0.0.1:{port}", "tests.apps.serving:app")
    with (
        running(command, port) as process,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        # The application leaves the setting out: the default, 1 s, applies.
        hold = 2 * UNIT
        response = pool.submit(
            httpx.get, f"{process.url}/hog?s={hold}", timeout=30 * UNIT
        )

        def warned() -> bool:
            return "the event loop has been held" in process.log()

        wait_until(warned, 10)
        assert not response.done()  # the request is still being held
        assert response.result().text == "hogged"
        wait_until(lambda: "free again" in process.log(), 10)
        log = process.log()
    warning = log[log.index("the event loop has been held") :]
    assert f"{SETTING} = 1)" in warning
    assert ", in hog\n    time.sleep(" in warning
    assert "aiopyramid.mode = thread" in warning
    assert log.count("the event loop has been held") == 1
