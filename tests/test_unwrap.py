"""One table of view shapes, through the one function that unwraps them.

:func:`aiopyramid._unwrap.unwrap_view` finds the function behind a view; the
HTTP mappers (:func:`aiopyramid.config.is_coroutine_view`), the legacy
generator support (:func:`aiopyramid._bridge.allow_yield_from`) and the
websocket mappers (``view_target``) must all agree with it on every shape.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

import pytest

from aiopyramid._unwrap import allow_yield_from, takes_request_only, unwrap_view
from aiopyramid.config import is_coroutine_view
from aiopyramid.websocket.config._base import WebsocketMapperBase


def plain(*args: Any) -> str:
    return "plain"


async def coroutine(*args: Any) -> str:
    return "coroutine"


def legacy(*args: Any) -> Any:
    yield from asyncio.sleep(0)
    return "legacy"


def legacy_in_partial(*args: Any) -> Any:
    yield from asyncio.sleep(0)


def legacy_method_body(*args: Any) -> Any:
    yield from asyncio.sleep(0)


def legacy_wrapped(*args: Any) -> Any:
    yield from asyncio.sleep(0)


@functools.wraps(coroutine)
def wraps_coroutine(*args: Any) -> Any:
    return coroutine(*args)


@functools.wraps(legacy_wrapped)
def wraps_legacy(*args: Any) -> Any:
    return legacy_wrapped(*args)


class PlainClass:
    def __init__(self, *args: Any) -> None:
        pass

    def __call__(self, *args: Any) -> str:
        return "plain"


class CoroutineClass:
    def __init__(self, *args: Any) -> None:
        pass

    async def __call__(self, *args: Any) -> str:
        return "coroutine"

    async def show(self, *args: Any) -> str:
        return "show"

    def plain_show(self, *args: Any) -> str:
        return "plain show"


class LegacyClass:
    def __init__(self, *args: Any) -> None:
        pass

    __call__ = legacy_method_body


#: (id, view, attr, the function at the end of the chain, coroutine view?)
SHAPES = [
    ("function", plain, None, plain, False),
    ("async def", coroutine, None, coroutine, True),
    ("partial", functools.partial(coroutine, 1), None, coroutine, True),
    ("partial of plain", functools.partial(plain, 1), None, plain, False),
    ("bound method", CoroutineClass().show, None, CoroutineClass.show, True),
    ("class", CoroutineClass, None, CoroutineClass.__call__, True),
    ("plain class", PlainClass, None, PlainClass.__call__, False),
    ("callable instance", CoroutineClass(), None, CoroutineClass.__call__, True),
    ("plain instance", PlainClass(), None, PlainClass.__call__, False),
    ("class with attr", CoroutineClass, "show", CoroutineClass.show, True),
    ("instance with attr", CoroutineClass(), "show", CoroutineClass.show, True),
    ("plain attr", CoroutineClass, "plain_show", CoroutineClass.plain_show, False),
    ("wraps wrapper", wraps_coroutine, None, coroutine, True),
    ("legacy generator", legacy, None, legacy, True),
    (
        "legacy in partial",
        functools.partial(legacy_in_partial),
        None,
        legacy_in_partial,
        True,
    ),
    ("legacy class", LegacyClass, None, legacy_method_body, True),
    ("wraps legacy", wraps_legacy, None, legacy_wrapped, True),
]

ids = [shape[0] for shape in SHAPES]


@pytest.mark.parametrize(
    ("name", "view", "attr", "inner", "is_coroutine"), SHAPES, ids=ids
)
def test_unwrap_view_ends_at_the_function_doing_the_work(
    name, view, attr, inner, is_coroutine
):
    """The chain starts with what is called and ends at the inner function."""
    chain = unwrap_view(view, attr)
    assert chain[-1] is inner
    if attr is None and not inspect.isclass(view):
        assert chain[0] is view


@pytest.mark.parametrize(
    ("name", "view", "attr", "inner", "is_coroutine"), SHAPES, ids=ids
)
def test_the_http_mappers_agree(name, view, attr, inner, is_coroutine):
    """is_coroutine_view answers from the same chain."""
    assert is_coroutine_view(view, attr) is is_coroutine


@pytest.mark.parametrize(
    ("name", "view", "attr", "inner", "is_coroutine"), SHAPES, ids=ids
)
def test_allow_yield_from_flags_the_generator_behind_every_shape(
    name, view, attr, inner, is_coroutine
):
    """Every legacy generator function behind a view may be awaited after it."""
    allow_yield_from(view, attr)
    flagged = bool(getattr(inner, "__code__", None)) and bool(
        inner.__code__.co_flags & inspect.CO_ITERABLE_COROUTINE
    )
    assert flagged is inspect.isgeneratorfunction(inner)


@pytest.mark.parametrize(
    ("name", "view", "attr", "inner", "is_coroutine"), SHAPES, ids=ids
)
def test_the_websocket_mappers_call_the_same_function(
    name, view, attr, inner, is_coroutine
):
    """A websocket mapper's target for the view leads to the same function."""
    target = WebsocketMapperBase(attr=attr).view_target(view)
    called = target("context", "request")
    assert unwrap_view(called)[-1] is inner
    if inspect.isgeneratorfunction(inner):
        assert inner.__code__.co_flags & inspect.CO_ITERABLE_COROUTINE


def test_nothing_to_unwrap():
    """A missing attr or None gives an empty chain, and no coroutine view."""
    assert unwrap_view(PlainClass, "missing") == ()
    assert unwrap_view(None) == ()
    assert not is_coroutine_view(PlainClass, "missing")
    allow_yield_from(None)  # nothing to flag, no error


def test_a_wrapper_cycle_ends():
    """A wrapper that wraps itself is walked once."""

    def looped() -> None:
        pass

    looped.__wrapped__ = looped  # type: ignore[attr-defined]
    assert unwrap_view(looped) == (looped,)


def passing_on(func):
    """A functools.wraps wrapper that only passes its arguments on."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def request_only(request):
    return request


def context_and_request(context, request):
    return request


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        pytest.param(request_only, True, id="request-only"),
        pytest.param(context_and_request, False, id="context-and-request"),
        pytest.param(passing_on(request_only), True, id="wrapper-of-request-only"),
        pytest.param(
            passing_on(passing_on(request_only)), True, id="two-wrappers-deep"
        ),
        pytest.param(passing_on(context_and_request), False, id="wrapper-of-both"),
        pytest.param(passing_on(max), False, id="wrapper-of-a-builtin"),
    ],
)
def test_takes_request_only_looks_through_pure_wrappers(view, expected):
    """Pure (*args) wrappers are looked through down to the view's own signature."""
    assert takes_request_only(view) is expected
