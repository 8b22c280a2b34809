"""Pyramid's "thread locals", kept per request instead of per thread.

Pyramid keeps the current request and registry on one stack in
``pyramid.threadlocal.manager``, a :class:`threading.local`.  Every greenlet of
a thread shares it, so with requests interleaved on one loop a request that
resumes would find another request on top.  Pyramid imports that object by
name in several modules, so replacing it would not reach them all; instead
the object itself is switched to a class whose stack lives in a
:class:`~contextvars.ContextVar`, which greenlets, tasks and copied contexts
(executor threads) each see their own way.  :func:`install` does it (when
``config.include('aiopyramid')`` runs) and :func:`uninstall` undoes it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import pyramid.threadlocal
from pyramid.threadlocal import ThreadLocalManager

# An immutable tuple per context: a copied context starts from the same stack,
# and pushing or popping in one never changes what another sees.
_stack: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "aiopyramid.threadlocal_stack", default=()
)


class ContextLocalManager(ThreadLocalManager):
    """A :class:`~pyramid.threadlocal.ThreadLocalManager` keyed by context."""

    def __init__(self, default: Any = None) -> None:
        # threading.local runs __init__ again in each new thread: it must not
        # reset the stack there, or executor threads would lose the request.
        self.default = default
        # The thread's own stack, unused here, is what Pyramid's class finds
        # again in this thread if uninstall() switches back to it.
        self.__dict__.setdefault("stack", [])

    @property
    def stack(self) -> list[Any]:  # type: ignore[override]
        """A copy of the current context's stack, bottom first."""
        return list(_stack.get())

    def push(self, info: Any) -> None:
        """Make ``info`` the current request/registry mapping."""
        _stack.set((*_stack.get(), info))

    set = push

    def pop(self) -> Any:
        """Remove and return the current mapping (``None`` if there is none)."""
        stack = _stack.get()
        if not stack:
            return None
        _stack.set(stack[:-1])
        return stack[-1]

    def get(self) -> Any:
        """Return the current mapping, or the default one."""
        stack = _stack.get()
        return stack[-1] if stack else self.default()

    def clear(self) -> None:
        """Empty the current context's stack."""
        _stack.set(())


#: The class of Pyramid's manager before :func:`install` switched it.
_original: type[ThreadLocalManager] = ThreadLocalManager


def install() -> Callable[[], None]:
    """Switch Pyramid's global manager to per-context storage (idempotent).

    Returns :func:`uninstall`, which undoes it.
    """
    global _original
    manager = pyramid.threadlocal.manager
    if type(manager) is not ContextLocalManager:
        _original = type(manager)
        stack = list(manager.stack)
        manager.__class__ = ContextLocalManager
        for info in stack:
            manager.push(info)
    return uninstall


def uninstall() -> None:
    """Switch Pyramid's global manager back to per-thread storage (idempotent).

    The current context's stack becomes the current thread's; other threads
    find their own stacks (empty if they started after :func:`install`).
    It is process-wide, as :func:`install` is: for tests and for shutting
    down, not while requests interleave.
    """
    manager = pyramid.threadlocal.manager
    if type(manager) is ContextLocalManager:
        stack = list(_stack.get())
        _stack.set(())
        manager.__class__ = _original
        manager.__dict__["stack"] = stack  # this thread's, where Pyramid keeps it
