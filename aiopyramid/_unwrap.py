"""From a view to the function that does its work: one walk for every shape.

Whether a view is a coroutine view (:mod:`aiopyramid.config`), and which
legacy generator functions must be allowed to ``yield from`` coroutines
(:func:`allow_yield_from`, for the HTTP and the websocket
mappers alike), both depend on what a view really calls.  Views come as
functions, ``async def`` functions, partials, bound methods, classes (with
or without ``attr``), callable instances and ``functools.wraps`` wrappers;
:func:`unwrap_view` is the one place that knows how to look through each.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any

from pyramid.viewderivers import requestonly

__all__ = ["allow_yield_from", "takes_request_only", "unwrap_view"]

#: Longest chain of wrappers followed (a guard against objects that make a
#: new ``__wrapped__`` each time they are asked).
_MAX_DEPTH = 100


def unwrap_view(view: Any, attr: str | None = None) -> tuple[Any, ...]:
    """Every callable from ``view`` down to the function that does the work.

    The first is what runs when the view is called: ``view``'s ``attr``
    method if ``attr`` is given (a class's or an instance's), a class's
    ``__call__`` method, a callable instance's ``__call__``, or ``view``
    itself.  Each next one is what the previous wraps: a partial's
    ``func``, a bound method's (or static or class method's) ``__func__``,
    a ``functools.wraps`` wrapper's ``__wrapped__``, a callable instance's
    ``__call__``.  Empty when there is nothing to call (an ``attr`` the view
    lacks, ``None``).
    """
    if attr is not None:
        target = getattr(view, attr, None)
    elif inspect.isclass(view):
        target = view.__call__
    else:
        target = view
    chain: list[Any] = []
    seen: set[int] = set()
    while target is not None and id(target) not in seen and len(chain) < _MAX_DEPTH:
        seen.add(id(target))
        chain.append(target)
        target = _wrapped(target)
    return tuple(chain)


def _wrapped(obj: Any) -> Any:
    """What ``obj`` calls in turn, or ``None`` if it is the end of the chain."""
    if isinstance(obj, functools.partial):
        return obj.func
    if inspect.ismethod(obj) or isinstance(obj, (staticmethod, classmethod)):
        return obj.__func__
    wrapped = getattr(obj, "__wrapped__", None)
    if wrapped is not None:
        return wrapped
    if inspect.isroutine(obj) or inspect.isclass(obj) or not callable(obj):
        return None  # a plain function, a built-in, a class: nothing inside
    return type(obj).__call__  # a callable instance


def allow_yield_from(obj: Any, attr: str | None = None) -> None:
    """Let a legacy generator function ``yield from`` native coroutines.

    Python 3.11 removed ``asyncio.coroutine``; :func:`types.coroutine` still
    flags a generator function's code object (in place) so that the
    generators it makes may delegate to ``async def`` coroutines and be
    awaited.  Applied to every generator function behind ``obj`` (a view,
    with ``attr``, as :func:`unwrap_view` finds them:
    behind methods, partials, callable objects and ``functools.wraps``
    wrappers), since a wrapper around those would not help.
    """
    for func in unwrap_view(obj, attr):
        if inspect.isfunction(func) and inspect.isgeneratorfunction(func):
            types.coroutine(func)


def takes_request_only(view: Any, attr: str | None = None) -> bool:
    """Whether Pyramid should call ``view`` with the request alone.

    Pyramid's own test (``requestonly``) reads the signature of what it is
    given: a ``functools.wraps`` wrapper taking ``(*args, **kwargs)``, such
    as :func:`~aiopyramid.helpers.synchronize`'s, looks as if it took
    ``(context, request)`` and the function inside, which takes only
    ``request``, would then get two arguments.  So wrappers that only pass
    their arguments on are looked through, down to the first function with
    a signature of its own; a wrapper naming its arguments is taken at its
    word.
    """
    if requestonly(view, attr):
        return True
    target = getattr(view, attr, None) if attr else view
    if inspect.isclass(view) or not inspect.isfunction(target):
        return False
    for depth in range(_MAX_DEPTH):
        wrapped = getattr(target, "__wrapped__", None)
        if not _passes_arguments_on(target) or not callable(wrapped):
            try:
                return depth > 0 and requestonly(target)
            except TypeError:  # no signature to read (a built-in): as Pyramid
                return False
        target = wrapped
    return False


def _passes_arguments_on(func: Any) -> bool:
    """Whether ``func`` takes only ``*args`` (and keywords): a pure wrapper."""
    if not inspect.isfunction(func):
        return False
    spec = inspect.getfullargspec(func)
    return not spec.args and spec.varargs is not None
