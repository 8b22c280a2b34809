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

from ._bridge import wait_for

__all__ = ["SLASH", "AsyncioTraverser", "traverse"]

#: The path separator (and the root's path), as the original library named it.
SLASH = "/"


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


async def traverse(
    i: int,
    ob: Any,
    view_selector: str,
    vpath_tuple: tuple[str, ...],
    vroot_idx: int,
    vroot: Any,
    vroot_tuple: tuple[str, ...],
    root: Any,
    subpath: tuple[str, ...],
) -> dict[str, Any]:
    """Walk ``vpath_tuple`` from ``ob`` on the event loop; the original's coroutine.

    The arguments are the state of Pyramid's traversal algorithm once the
    path is split (``i`` the index of the first segment to look up,
    ``vroot_idx`` the index of the virtual root's last segment or ``-1``);
    the result is the dict an :class:`~pyramid.interfaces.ITraverser`
    returns.  Each ``__getitem__`` may return an awaitable (``async def``
    resources), which is awaited; a plain value is used as it is.  Call it
    from coroutine code; :class:`AsyncioTraverser` does the same walk from
    the request's greenlet.
    """

    def found(context: Any, view_name: str, at: int) -> dict[str, Any]:
        return {
            "context": context,
            "view_name": view_name,
            "subpath": vpath_tuple[at + 1 :],
            "traversed": vpath_tuple[: vroot_idx + at + 1],
            "virtual_root": vroot,
            "virtual_root_path": vroot_tuple,
            "root": root,
        }

    for segment in vpath_tuple[i:]:
        if segment[:2] == view_selector:
            return found(ob, segment[2:], i)
        getitem = getattr(ob, "__getitem__", None)
        if getitem is None:
            return found(ob, segment, i)
        try:
            child = getitem(segment)
            if inspect.isawaitable(child):
                child = await child
        except KeyError:
            return found(ob, segment, i)
        if i == vroot_idx:
            vroot = child
        ob = child
        i += 1
    return {
        "context": ob,
        "view_name": "",
        "subpath": subpath,
        "traversed": vpath_tuple,
        "virtual_root": vroot,
        "virtual_root_path": vroot_tuple,
        "root": root,
    }


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
