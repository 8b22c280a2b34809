"""Tests of Pyramid's thread locals kept per context."""

from __future__ import annotations

import contextvars
import threading

import pyramid.threadlocal
from pyramid.threadlocal import get_current_registry, manager

from aiopyramid import _threadlocal


def test_install_keeps_existing_entries_and_is_idempotent():
    """Installing moves what was pushed onto the new stack, once."""
    _threadlocal.install()
    _threadlocal.install()
    assert type(pyramid.threadlocal.manager) is _threadlocal.ContextLocalManager


def test_push_pop_get_clear_in_isolated_contexts():
    """Each context has its own stack; copies do not share pushes."""
    _threadlocal.install()

    def scenario():
        assert manager.get()["request"] is None
        manager.push({"request": "outer", "registry": None})
        inner = contextvars.copy_context().run(inner_scenario)
        assert manager.get()["request"] == "outer"
        assert manager.stack == [{"request": "outer", "registry": None}]
        assert manager.pop() == {"request": "outer", "registry": None}
        assert manager.pop() is None
        manager.set({"request": "again"})
        manager.clear()
        assert manager.get()["request"] is None
        return inner

    def inner_scenario():
        seen = manager.get()["request"]
        manager.push({"request": "inner"})
        return seen, manager.get()["request"]

    assert contextvars.copy_context().run(scenario) == ("outer", "inner")


def test_new_threads_keep_the_context_stack():
    """A thread run in a copied context sees the request pushed before."""
    _threadlocal.install()
    seen = []

    def scenario():
        manager.push({"request": "req", "registry": "reg"})
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run,
            args=(
                lambda: seen.append((manager.get()["request"], get_current_registry())),
            ),
        )
        thread.start()
        thread.join()
        manager.pop()

    contextvars.copy_context().run(scenario)
    assert seen == [("req", "reg")]
