"""The debug toolbar is adapted only for applications that include aiopyramid.

Two applications in one process, one with aiopyramid and one without, share
the toolbar's logging handler and profiling lock: each gets its own
behaviour from them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pyramid.config import Configurator
from pyramid.threadlocal import manager
from webtest import TestApp

from aiopyramid.testing import SynchronousApp
from tests.harness.inprocess import make_app
from tests.harness.servers import import_required

log = logging.getLogger("tests.addons_scope")


def logging_view(seen: dict[str, Any]) -> Any:
    """A view that logs, then notes under which key the panel filed it."""
    from pyramid_debugtoolbar.panels import logger as panel

    def view(request: Any) -> dict[str, Any]:
        panel.handler.clear_records()  # as the panel does when a request starts
        log.warning("from %s", request.path)
        records = panel.handler.records
        seen[request.path] = {
            "request": [r["message"] for r in records.get(request, [])],
            "thread": [
                r["message"] for r in records.get(threading.current_thread(), [])
            ],
            "panel": [r["message"] for r in panel.handler.get_records()],
        }
        panel.handler.clear_records()
        return {}

    return view


def two_apps(view: Any) -> tuple[Any, Any]:
    def routes(config: Configurator) -> None:
        config.add_route("here", "/{name}")
        config.add_view(view, route_name="here", renderer="json")

    with_aiopyramid = make_app(routes)  # adapts the toolbar when committed
    with Configurator() as config:
        routes(config)
    return with_aiopyramid, config.make_wsgi_app()


def test_log_records_are_filed_per_request_only_with_aiopyramid():
    """aiopyramid's app files by request; the other one by thread, as before."""
    import_required("pyramid_debugtoolbar.panels.logger")
    seen: dict[str, Any] = {}
    adapted, plain = two_apps(logging_view(seen))
    with SynchronousApp(adapted) as sync:
        TestApp(sync).get("/adapted")
    TestApp(plain).get("/plain")
    assert seen["/adapted"] == {
        "request": ["from /adapted"],
        "thread": [],
        "panel": ["from /adapted"],
    }
    assert seen["/plain"] == {
        "request": [],
        "thread": ["from /plain"],
        "panel": ["from /plain"],
    }


def test_the_profiling_lock_is_plain_for_the_other_app(run):
    """In a greenlet, aiopyramid's request waits on the loop; the other blocks."""
    import_required("pyramid_debugtoolbar.panels.performance")
    from aiopyramid._addons import LoopFriendlyLock
    from aiopyramid.helpers import spawn_greenlet

    adapted, plain = two_apps(lambda request: {})
    lock = LoopFriendlyLock()

    def hold(app: Any) -> tuple[bool, bool]:
        request = app.request_factory.blank("/x")
        request.registry = app.registry
        manager.push({"request": request, "registry": app.registry})
        try:
            with lock:
                return lock._holder is not None, lock._thread_lock.locked()
        finally:
            manager.pop()

    async def main() -> list[tuple[bool, bool]]:
        return [await spawn_greenlet(hold, app) for app in (adapted, plain)]

    # (greenlet holder, thread lock held) for each application's request.
    assert run(main()) == [(True, False), (False, True)]
    assert not lock._thread_lock.locked()  # both released
    assert lock._holder is None
