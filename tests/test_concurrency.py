"""Request-scoped state under concurrency: 200 requests interleaved on one loop."""

from __future__ import annotations

import asyncio
import contextvars
import random

from pyramid.interfaces import ITraverser
from pyramid.response import Response
from pyramid.threadlocal import get_current_registry, get_current_request
from zope.interface import Interface

from aiopyramid.helpers import synchronize
from aiopyramid.traversal import AsyncioTraverser
from tests.harness.inprocess import get, make_app

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


async def pause():
    await asyncio.sleep(random.random() / 50)


@synchronize
async def await_in_tween():
    await pause()
    return get_current_request(), request_id.get()


class Root:
    __name__ = ""
    __parent__ = None

    async def __getitem__(self, name):
        await pause()
        request = get_current_request()
        # Traversal sees its own request and the id its tween set.
        assert request.path == "/" + name
        assert request_id.get() == name
        child = Child()
        child.__name__, child.__parent__ = name, self
        return child


class Child:
    pass


def tween_factory(handler, registry):
    def tween(request):
        request_id.set(request.path.strip("/"))
        seen_request, seen_id = await_in_tween()
        assert seen_request is request
        assert seen_id == request_id.get()
        response = handler(request)
        assert get_current_request() is request
        return response

    return tween


async def nested(request):
    await pause()
    return get_current_request() is request, request_id.get()


async def coroutine_view(context, request):
    await pause()
    same, seen_id = await nested(request)
    return Response(
        f"{context.__name__} {same} {seen_id} "
        f"{get_current_registry() is request.registry}"
    )


def plain_view(context, request):
    return Response(
        f"{context.__name__} {get_current_request() is request} {request_id.get()} "
        f"{get_current_registry() is request.registry}"
    )


def build(view):
    def setup(config):
        config.registry.registerAdapter(AsyncioTraverser, (Interface,), ITraverser)
        config.set_root_factory(lambda request: Root())
        config.add_tween(f"{__name__}.tween_factory")
        config.add_view(view, context=Child)

    return make_app(setup)


def test_200_interleaved_requests_keep_their_own_state(run):
    """Views, tweens, traversers and awaited coroutines see only their request."""
    coroutine_app = build(coroutine_view)
    plain_app = build(plain_view)

    async def all_at_once():
        paths = [f"/r{i}" for i in range(200)]
        apps = [coroutine_app if i % 2 else plain_app for i in range(200)]
        responses = await asyncio.gather(
            *(get(app, path) for app, path in zip(apps, paths, strict=True))
        )
        return paths, responses

    paths, responses = run(all_at_once())
    for path, response in zip(paths, responses, strict=True):
        name = path.strip("/")
        assert response.status_int == 200, response.text
        assert response.text == f"{name} True {name} True"
    # Nothing leaked into the caller's context.
    assert request_id.get(None) is None
    assert get_current_request() is None
