"""Pyramid add-ons, unchanged, with coroutine views under AsyncGunicornWorker."""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import threading
import time
from pathlib import Path

import pyramid_tm
import pytest
from pyramid.config import Configurator
from pyramid.path import DottedNameResolver

from tests.harness.inprocess import make_app
from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    require_module,
    running,
    wait_until,
)

httpx = import_required("httpx")
TOOLBAR_LINK = re.compile(r'href="(http://[^"]*/_debug_toolbar/[0-9a-f]+)"')


def serve(app: str, **env: str):
    """Run ``app`` under one AsyncGunicornWorker."""
    port = free_port()
    command = gunicorn_command("--bind", f"127.0.0.1:{port}", "--timeout", "10", app)
    return running(command, port, env=env)


# -- pyramid_debugtoolbar ------------------------------------------------------


@pytest.fixture(scope="module")
def toolbar():
    """tests.apps.toolbar (aiopyramid included before the toolbar) under the worker."""
    for name in ("gunicorn", "uvicorn", "httpx", "pyramid_debugtoolbar"):
        require_module(name)
    with serve("tests.apps.toolbar:app") as process:
        yield process


async def logged(server, line: str) -> None:
    """Wait (letting the loop run) until the server has logged ``line``."""
    await asyncio.to_thread(wait_until, lambda: line in server.log())


async def panels_of(client: httpx.AsyncClient, page: httpx.Response) -> str:
    """The toolbar's page for the request that produced ``page``."""
    match = TOOLBAR_LINK.search(page.text)
    assert match, "no toolbar in the page"
    response = await client.get(match.group(1))
    assert response.status_code == 200
    return response.text


@pytest.mark.server
def test_toolbar_is_injected_and_its_pages_load(toolbar):
    """A coroutine view's HTML page gets the toolbar; its page and static files load."""

    async def main() -> None:
        async with httpx.AsyncClient(timeout=20 * UNIT) as client:
            page = await client.get(toolbar.url + "/page?name=one")
            assert page.status_code == 200
            assert 'id="pDebug"' in page.text
            panels = await panels_of(client, page)
            assert "pDebugPanelList" in panels or "Log Messages" in panels
            statics = re.findall(
                r'(?:src|href)="([^"]*/_debug_toolbar/static/[^"]+)"', panels
            )
            assert statics
            for url in statics[:5]:
                assert (await client.get(url)).status_code == 200

    asyncio.run(main())


@pytest.mark.server
def test_interleaved_requests_each_see_their_own_log_records(toolbar):
    """Interleaved requests' logging panels each hold their own records."""

    async def main() -> tuple[str, str, str]:
        async with httpx.AsyncClient(timeout=20 * UNIT) as client:
            first = asyncio.ensure_future(
                client.get(toolbar.url + "/page?name=AAA&s=0.5")
            )
            await logged(toolbar, "before the wait in AAA")
            second = await client.get(toolbar.url + "/page?name=BBB&s=0.05")
            plain = await client.get(toolbar.url + "/plain?name=PPP")
            return (
                await panels_of(client, await first),
                await panels_of(client, second),
                await panels_of(client, plain),
            )

    first, second, plain = asyncio.run(main())
    pattern = r"(?:before|after) the wait in \w+|in the thread of \w+"
    assert re.findall(pattern, first) == [
        "before the wait in AAA",
        "after the wait in AAA",
    ]
    assert re.findall(pattern, second) == [
        "before the wait in BBB",
        "after the wait in BBB",
    ]
    assert re.findall(pattern, plain) == ["in the thread of PPP"]


@pytest.mark.server
def test_performance_panel_never_freezes_the_worker(toolbar):
    """Two profiled requests interleave without blocking the loop; others are served."""
    HOLD = 3 * UNIT  # P1's wait, with the profiler's lock held

    async def main() -> tuple[float, list[int], str]:
        cookies = {"pdtb_active": "performance"}
        async with (
            httpx.AsyncClient(timeout=20 * UNIT, cookies=cookies) as profiled,
            httpx.AsyncClient(timeout=5 * UNIT) as plain,
        ):
            first = asyncio.ensure_future(
                profiled.get(toolbar.url + f"/page?name=P1&s={HOLD}")
            )
            await logged(toolbar, "before the wait in P1")  # P1 holds the lock
            second = asyncio.ensure_future(
                profiled.get(toolbar.url + "/page?name=P2&s=0.1")
            )
            await logged(toolbar, "P2 arrived")  # and goes on to wait for it
            started = time.monotonic()
            quick = await plain.get(toolbar.url + "/ahello")
            took = time.monotonic() - started
            assert quick.text == "Hello coroutine"
            pages = [await first, await second]
            return (
                took,
                [page.status_code for page in pages],
                await panels_of(profiled, pages[1]),
            )

    took, statuses, panels = asyncio.run(main())
    # Held up behind P1, the quick request would take most of P1's wait.
    assert took < HOLD / 2
    assert statuses == [200, 200]
    assert "Elapsed time" in panels


# -- pyramid_tm with SQLAlchemy, jinja2, retry, exclog -------------------------


@pytest.fixture(scope="module")
def addons():
    """tests.apps.addons on a fresh SQLite file, under the worker."""
    for name in ("gunicorn", "uvicorn", "httpx", "pyramid_tm", "zope.sqlalchemy"):
        require_module(name)
    for name in ("aiosqlite", "pyramid_retry", "pyramid_exclog", "pyramid_jinja2"):
        require_module(name)
    db = Path(tempfile.mkdtemp(prefix="aiopyramid-tm-")) / "notes.sqlite"
    with serve("tests.apps.addons:main()", AIOPYRAMID_TEST_DB=str(db)) as process:
        yield process


def notes(server) -> list[str]:
    """The notes, read by a coroutine view through SQLAlchemy's asyncio API."""
    return httpx.get(server.url + "/read", timeout=10 * UNIT).json()


@pytest.mark.server
@pytest.mark.database
def test_tm_commits_plain_view_and_rolls_back_failures(addons):
    """A plain view's write commits; a failing request's flushed write rolls back."""
    assert httpx.get(addons.url + "/write?text=kept").text == "written"
    assert httpx.get(addons.url + "/write?text=lost&fail=1").status_code == 500
    assert httpx.get(addons.url + "/write_and_fail?text=lost too").status_code == 500
    found = notes(addons)
    assert "kept" in found
    assert "lost" not in found and "lost too" not in found


@pytest.mark.server
@pytest.mark.database
def test_interleaved_requests_never_share_a_transaction(addons):
    """A slow request's write commits although a failing request ran during its wait."""

    async def main() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(timeout=20 * UNIT) as client:
            slow = asyncio.ensure_future(
                client.get(addons.url + "/write_slowly?text=slow&s=0.5")
            )
            await logged(addons, "slow written, waiting")
            failed = await client.get(addons.url + "/write_and_fail?text=failed")
            return await slow, failed

    slow, failed = asyncio.run(main())
    assert (slow.status_code, failed.status_code) == (200, 500)
    # With one thread-wide manager, the failing request's begin() aborts the
    # slow one's transaction: it answers 200, yet its write is lost.
    assert slow.text == "same transaction"
    found = notes(addons)
    assert "slow" in found
    assert "failed" not in found


@pytest.mark.server
def test_jinja2_renders_a_coroutine_views_dict(addons):
    """A coroutine view's dict is rendered by a Jinja2 template."""
    response = httpx.get(addons.url + "/greet?name=Ann")
    assert response.text.strip() == "<p>Hello, Ann!</p>"


@pytest.mark.server
def test_retry_retries_a_coroutine_view(addons):
    """pyramid_retry retries a coroutine view's retryable error until it succeeds."""
    response = httpx.get(addons.url + "/flaky?key=one")
    assert (response.status_code, response.text) == (200, "succeeded on attempt 3")


@pytest.mark.server
def test_exclog_logs_a_coroutine_views_traceback(addons):
    """pyramid_exclog logs a coroutine view's traceback; serving goes on."""
    assert httpx.get(addons.url + "/crash").status_code == 500
    assert httpx.get(addons.url + "/ahello").text == "Hello coroutine"
    wait_until(lambda: "ValueError: crashed in a coroutine view" in addons.log())
    log = addons.log()
    assert "Traceback (most recent call last)" in log
    assert "ValueError: crashed in a coroutine view" in log
    assert "http://127.0.0.1" in log  # exclog's first line names the URL


# -- the adaptations themselves, in process ------------------------------------


resolve = DottedNameResolver().maybe_resolve


def custom_manager_hook(request: object) -> None:
    """A tm.manager_hook of the application's own (never called)."""


def test_include_sets_a_transaction_manager_per_request():
    """With pyramid_tm, include sets tm.manager_hook unless the app set one."""
    with Configurator(settings={}) as config:
        config.include("aiopyramid")
        config.include("pyramid_tm")
    hook = DottedNameResolver().maybe_resolve(
        config.registry.settings["tm.manager_hook"]
    )
    assert hook is pyramid_tm.explicit_manager
    own = {"tm.manager_hook": "tests.test_addons.custom_manager_hook"}
    with Configurator(settings=own) as config:
        config.include("pyramid_tm")
        config.include("aiopyramid")
    hook = DottedNameResolver().maybe_resolve(
        config.registry.settings["tm.manager_hook"]
    )
    assert hook is custom_manager_hook


def test_include_leaves_tm_settings_alone_without_pyramid_tm():
    """An application that does not use pyramid_tm gets no tm.manager_hook."""
    with Configurator(settings={}) as config:
        config.include("aiopyramid")
    assert "tm.manager_hook" not in config.registry.settings


def test_performance_lock_lets_the_loop_run_while_a_request_waits(run):
    """A contended LoopFriendlyLock parks the greenlet; the loop serves others."""
    from aiopyramid._addons import LoopFriendlyLock
    from aiopyramid.helpers import spawn_greenlet, synchronize

    lock = LoopFriendlyLock()
    order: list[str] = []

    @synchronize
    async def wait(seconds: float) -> None:
        await asyncio.sleep(seconds)

    arrived = {name: asyncio.Event() for name in "ABC"}
    entered = {name: asyncio.Event() for name in "ABC"}

    def profiled(name: str, seconds: float) -> None:
        arrived[name].set()  # and on at once to the lock
        with lock:
            order.append(f"{name} in")
            entered[name].set()
            wait(seconds)  # the input: A holds the lock while it waits 0.2 s
            order.append(f"{name} out")

    async def ticker() -> None:
        await entered["A"].wait()
        order.append("loop free")

    async def cancelled_waiter() -> None:
        task = asyncio.ensure_future(spawn_greenlet(profiled, "C", 0))
        await arrived["C"].wait()  # C is parked on the lock
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def main() -> None:
        first = asyncio.ensure_future(spawn_greenlet(profiled, "A", 0.2))
        await entered["A"].wait()
        await asyncio.gather(
            first, spawn_greenlet(profiled, "B", 0), ticker(), cancelled_waiter()
        )

    run(main())
    assert order == ["A in", "loop free", "A out", "B in", "B out"]


def test_performance_lock_is_a_plain_lock_in_threads():
    """Outside a loop the LoopFriendlyLock excludes threads like threading.Lock."""
    from aiopyramid._addons import LoopFriendlyLock

    lock = LoopFriendlyLock()
    inside: list[int] = []
    peak: list[int] = []

    def work() -> None:
        for _ in range(200):
            with lock:
                inside.append(1)
                peak.append(len(inside))
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(peak) == 1


def test_log_records_are_filed_per_request(run):
    """The adapted logging handler files records under Pyramid's current request."""
    require_module("pyramid_debugtoolbar")
    import pyramid_debugtoolbar.panels.logger as panel

    from aiopyramid._addons import adapt_debugtoolbar
    from aiopyramid.testing import SynchronousApp

    adapt_debugtoolbar()
    adapt_debugtoolbar()  # idempotent
    seen = {}

    async def view(request):
        logging.getLogger("tests.addons").warning("in %s", request.path)
        seen[request.path] = [r["message"] for r in panel.handler.get_records()]
        panel.handler.clear_records()
        return {}

    def setup(config):
        config.add_route("a", "/a")
        config.add_view(view, route_name="a", renderer="json")

    app = make_app(setup)
    logging.getLogger("tests.addons").warning("outside any request: not kept")
    assert panel.handler.get_records() == []
    from webtest import TestApp

    with SynchronousApp(app) as sync:
        TestApp(sync).get("/a")
    assert seen == {"/a": ["in /a"]}
