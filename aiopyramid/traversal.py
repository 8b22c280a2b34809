"""A traverser whose resources may look children up asynchronously.

Register it in place of Pyramid's own::

    from pyramid.interfaces import ITraverser
    from zope.interface import Interface
    from aiopyramid.traversal import AsyncioTraverser

    config.registry.registerAdapter(AsyncioTraverser, (Interface,), ITraverser)

A resource's ``__getitem__`` may then be an ``async def`` method (or a
synchronized one, or a plain one, as before); raising :class:`KeyError` ends
traversal there, exactly as with Pyramid.  Traversal runs in the request's
greenlet, which waits for each lookup while the loop serves others.
"""

from __future__ import annotations

import inspect
from typing import Any

from pyramid.traversal import ResourceTreeTraverser

from .helpers import wait_for

__all__ = ["AsyncioTraverser"]


class _Waiting:
    """Stands for a resource while Pyramid's traverser walks the tree.

    Pyramid's traverser fetches ``ob.__getitem__`` and calls it; here that
    lookup returns a function that waits for an awaitable result, so every
    rule of Pyramid's traversal (virtual roots, ``@@`` view selectors,
    ``*traverse`` routes, subpaths) applies unchanged.
    """

    __slots__ = ("resource",)

    def __init__(self, resource: Any) -> None:
        self.resource = resource

    @property
    def __getitem__(self) -> Any:  # an AttributeError here stops traversal
        getitem = self.resource.__getitem__

        def waiting_getitem(name: str) -> _Waiting:
            child = getitem(name)
            if inspect.isawaitable(child):
                child = wait_for(child, f"{type(self.resource).__name__}.__getitem__")
            return _Waiting(child)

        return waiting_getitem


class AsyncioTraverser(ResourceTreeTraverser):
    """Pyramid's resource tree traverser, waiting for asynchronous lookups."""

    def __init__(self, root: Any) -> None:
        super().__init__(_Waiting(root))

    def __call__(self, request: Any) -> dict[str, Any]:
        """Traverse the tree for ``request`` and return Pyramid's result dict."""
        result: dict[str, Any] = super().__call__(request)
        for key in ("context", "root", "virtual_root"):
            result[key] = result[key].resource
        return result
