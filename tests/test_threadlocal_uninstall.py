"""Pyramid's thread locals kept per context can be switched back to per thread."""

from __future__ import annotations

import threading

import pyramid.threadlocal
from pyramid.threadlocal import ThreadLocalManager, manager

from aiopyramid import _threadlocal


def test_install_returns_uninstall_which_restores_pyramids_manager():
    """The manager object stays; its class, and the current stack, come back."""
    undo = _threadlocal.install()
    assert undo is _threadlocal.uninstall
    manager.push({"request": "kept", "registry": None})
    try:
        undo()
        assert pyramid.threadlocal.manager is manager
        assert type(manager) is ThreadLocalManager
        assert manager.get()["request"] == "kept"
        undo()  # idempotent
        assert type(manager) is ThreadLocalManager
        _threadlocal.install()  # and back again, with the stack
        assert manager.get()["request"] == "kept"
    finally:
        _threadlocal.install()
        manager.pop()
    assert manager.get()["request"] is None


def test_a_thread_started_while_installed_works_after_uninstall():
    """A thread whose stack was made by the per-context manager keeps a stack."""
    _threadlocal.install()
    started, uninstalled, done = threading.Event(), threading.Event(), []

    def worker():
        manager.get()  # the thread's first use, under ContextLocalManager
        started.set()
        uninstalled.wait(5)
        manager.push({"request": "in thread"})
        done.append((type(manager), manager.get()["request"], manager.pop()))

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert started.wait(5)
        _threadlocal.uninstall()
        uninstalled.set()
        thread.join(5)
    finally:
        uninstalled.set()
        _threadlocal.install()
    assert done == [(ThreadLocalManager, "in thread", {"request": "in thread"})]
