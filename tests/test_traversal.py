"""Tests of AsyncioTraverser against Pyramid's own traverser."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from pyramid.interfaces import ITraverser
from pyramid.response import Response
from pyramid.traversal import ResourceTreeTraverser, split_path_info
from webob import Request
from zope.interface import Interface

from aiopyramid.helpers import spawn_greenlet, synchronize
from aiopyramid.traversal import AsyncioTraverser, traverse
from tests.harness.inprocess import get, make_app

NAMES = ["a", "b", "c", "é", "x y"]


class Resource:
    """A plain resource: a dict of children."""

    def __init__(self, name="", parent=None, depth=3):
        self.__name__ = name
        self.__parent__ = parent
        self.children = (
            {n: type(self)(n, self, depth - 1) for n in NAMES} if depth else {}
        )

    def __getitem__(self, name):
        return self.children[name]


class AsyncResource(Resource):
    """A resource whose lookups are coroutines."""

    async def __getitem__(self, name):
        await asyncio.sleep(0)
        return self.children[name]


class SynchronizedResource(Resource):
    """A resource whose lookups are synchronized coroutines."""

    @synchronize
    async def __getitem__(self, name):
        await asyncio.sleep(0)
        return self.children[name]


class Leaf:
    """A resource without __getitem__: traversal stops at it."""

    __name__ = "leaf"


def path_of(resource):
    names = []
    while resource is not None:
        names.append(resource.__name__)
        resource = resource.__parent__
    return "/".join(reversed(names))


def comparable(result):
    return {
        key: path_of(value) if key in ("context", "root", "virtual_root") else value
        for key, value in result.items()
    }


segment = st.one_of(
    st.sampled_from([*NAMES, "missing", "@@edit", "..", ""]), st.text(max_size=3)
)
paths = st.lists(segment, max_size=6).map(lambda parts: "/" + "/".join(parts))


def pyramids_result(path, vroot):
    """A request for ``path`` (under virtual root ``vroot``) and Pyramid's answer."""
    environ = {} if vroot is None else {"HTTP_X_VHM_ROOT": vroot}
    request = Request.blank("/", environ=environ)
    request.environ["PATH_INFO"] = path.encode("utf-8").decode("latin-1")
    request.matchdict = None
    return request, comparable(ResourceTreeTraverser(Resource())(request))


@settings(max_examples=150, deadline=None)
@given(path=paths, vroot=st.sampled_from([None, "/a", "/a/b", "/missing"]))
def test_same_results_as_pyramid(path, vroot):
    """For any path and virtual root, async lookups give Pyramid's exact result."""
    request, expected = pyramids_result(path, vroot)

    async def traverse(root):
        return await spawn_greenlet(AsyncioTraverser(root), request)

    loop = asyncio.new_event_loop()
    try:
        for root in (Resource(), AsyncResource(), SynchronizedResource()):
            assert comparable(loop.run_until_complete(traverse(root))) == expected
    finally:
        loop.close()


@settings(max_examples=100, deadline=None)
@given(path=paths, vroot=st.sampled_from([None, "/a", "/a/b", "/missing"]))
def test_traverse_coroutine_gives_pyramids_results(path, vroot):
    """The original's traverse() coroutine walks the tree as Pyramid does."""
    _, expected = pyramids_result(path, vroot)
    vroot_tuple = split_path_info(vroot) if vroot else ()
    vpath_tuple = split_path_info((vroot or "") + path)

    loop = asyncio.new_event_loop()
    try:
        for root in (Resource(), AsyncResource()):
            walk = traverse(
                0, root, "@@", vpath_tuple, len(vroot_tuple) - 1, root,
                vroot_tuple, root, (),
            )  # fmt: skip
            assert comparable(loop.run_until_complete(walk)) == expected
    finally:
        loop.close()


def test_resource_without_getitem_stops_traversal(run):
    """A child without __getitem__ becomes the context, the rest is the view name."""

    class Root(AsyncResource):
        async def __getitem__(self, name):
            leaf = Leaf()
            leaf.__parent__ = self
            return leaf

    request = Request.blank("/leaf/view/sub")
    request.matchdict = None
    result = run(spawn_greenlet(AsyncioTraverser(Root(depth=0)), request))
    assert isinstance(result["context"], Leaf)
    assert result["view_name"] == "view"
    assert result["subpath"] == ("sub",)


def test_route_traverse_pattern_and_views(run):
    """*traverse routes and @@view selectors pick views through async lookups."""

    def setup(config):
        config.registry.registerAdapter(AsyncioTraverser, (Interface,), ITraverser)
        config.add_route(
            "tree", "/tree/*traverse", factory=lambda request: AsyncResource()
        )
        config.add_view(
            lambda context, request: Response("context " + path_of(context)),
            route_name="tree",
        )
        config.add_view(
            lambda context, request: Response("edit " + path_of(context)),
            route_name="tree",
            name="edit",
        )

    app = make_app(setup)
    assert run(get(app, "/tree/a/b")).text == "context /a/b"
    assert run(get(app, "/tree/a/@@edit")).text == "edit /a"
    assert run(get(app, "/tree/a/edit")).text == "edit /a"
