"""Code written against the original aiopyramid keeps working.

Each test is written the way the original library's users (and its own test
suite) wrote code: generator functions with ``yield from`` instead of
``async def`` (``@asyncio.coroutine`` is gone from Python, the generator
functions stay), greenlets that hand a :func:`run_in_greenlet` task to their
parent and read a future when resumed, and authentication policies awaited
from coroutine code.
"""

from __future__ import annotations

import asyncio

import greenlet
import pytest
from pyramid import testing
from pyramid.authentication import CallbackAuthenticationPolicy
from pyramid.config import Configurator
from pyramid.config.tweens import Tweens
from pyramid.interfaces import ITraverser
from pyramid.registry import Registry
from pyramid.response import Response
from pyramid.traversal import ResourceTreeTraverser, split_path_info
from pyramid.traversal import traverse as pyramid_traverse
from zope.interface import Interface

from aiopyramid.auth import CoroutineAuthenticationPolicyProxy, authn_policy_factory
from aiopyramid.config import CoroutineOrExecutorMapper
from aiopyramid.exceptions import ScopeError
from aiopyramid.helpers import (
    SCOPE_ERROR_MESSAGE,
    is_generator,
    run_in_greenlet,
    spawn_greenlet,
    synchronize,
)
from aiopyramid.traversal import SLASH, traverse
from aiopyramid.tweens import coroutine_logger_tween_factory
from tests.harness.inprocess import get, make_app


def hand_off(func, *args):
    """Wait for ``func(*args)`` by hand, as the original documented."""
    this = greenlet.getcurrent()
    future = asyncio.get_running_loop().create_future()
    this.parent.switch(
        asyncio.ensure_future(run_in_greenlet(this, future, func, *args))
    )
    return future.result()


def sample(pass_back):
    yield from asyncio.sleep(0)
    return pass_back


def chain(pass_back):
    out = yield from sample(pass_back)
    return out - 1


def raise_key_error():
    yield from asyncio.sleep(0)
    raise KeyError("missing")


# -- helpers -------------------------------------------------------------------


def test_is_generator_on_the_originals_cases():
    """Generator functions count as coroutine functions; plain functions do not."""

    def regular():
        yield 1

    def plain():
        return "plain old function"

    assert is_generator(regular)
    assert is_generator(chain)
    assert not is_generator(plain)


def test_spawn_greenlet_returns_the_direct_result(run):
    """A child that just returns ends the wait with its value."""
    assert run(spawn_greenlet(lambda: 4)) == 4


def test_spawn_greenlet_takes_a_switched_plain_value(run):
    """A plain value switched up ends the wait; the child is not resumed."""
    after = []

    def child():
        greenlet.getcurrent().parent.switch(4)
        after.append("resumed")  # pragma: no cover - must never run
        return 5

    assert run(spawn_greenlet(child)) == 4
    assert after == []


def test_spawn_greenlet_takes_a_switched_futures_result(run, loop):
    """A switched-up future is awaited; its result is the wait's value."""
    future = loop.create_future()
    future.set_result(4)

    def child():
        greenlet.getcurrent().parent.switch(future)
        return 5  # never reached: nothing resumes the child

    assert run(spawn_greenlet(child)) == 4


def test_spawn_greenlet_awaits_a_returned_future(run, loop):
    """A child that returns a future ends the wait with the future's result."""

    def child():
        future = loop.create_future()
        loop.call_soon(future.set_result, "settled")
        return future

    assert run(spawn_greenlet(child)) == "settled"


def test_the_issues_reproducer(run):
    """run_in_greenlet's task resumes the child; the child's return is the answer."""

    async def action():
        await asyncio.sleep(0)
        return 12

    def in_greenlet():
        this = greenlet.getcurrent()
        fut = asyncio.get_running_loop().create_future()
        this.parent.switch(asyncio.ensure_future(run_in_greenlet(this, fut, action)))
        return fut.result() + 1

    assert run(spawn_greenlet(in_greenlet)) == 13


@pytest.mark.parametrize(
    ("func", "expected"),
    [(sample, 12), (chain, 11), (lambda value: value * 2, 24)],
)
def test_run_in_greenlet_accepts_generators_and_plain_functions(run, func, expected):
    """Legacy generator functions, chained or not, and plain functions all work."""

    def child():
        return hand_off(func, 12) + 1

    assert run(spawn_greenlet(child)) == expected + 1


def test_run_in_greenlet_puts_the_exception_in_the_future(run):
    """The coroutine's exception reaches the greenlet through the future."""

    def child():
        with pytest.raises(KeyError, match="missing"):
            hand_off(raise_key_error)
        return "handled"

    assert run(spawn_greenlet(child)) == "handled"


def test_both_protocols_mix_in_one_greenlet(run):
    """synchronize and the hand-off alternate, any number of times, in one child."""

    @synchronize
    def doubled(x):
        return (yield from sample(2 * x))

    def child():
        total = 0
        for i in range(5):
            total += doubled(i)  # the driver resumes the child
            total += hand_off(sample, i)  # the task resumes the child
            total += hand_off(chain, i)
        return total

    expected = sum(2 * i + i + (i - 1) for i in range(5))
    assert run(spawn_greenlet(child)) == expected


def test_hand_off_under_many_interleaved_children(run):
    """Interleaved children each get their own results back."""

    def child(n):
        first = hand_off(sample, n)
        second = synchronize(sample)(n * 10)
        return first, second

    async def all_of_them():
        return await asyncio.gather(*(spawn_greenlet(child, n) for n in range(50)))

    assert run(all_of_them()) == [(n, n * 10) for n in range(50)]


def test_synchronize_scope_rules_as_the_original(run):
    """Strict: ScopeError where nothing can wait; strict=False: the coroutine."""

    def plain(value):
        return value

    with pytest.raises(Exception, match="coroutine function"):
        synchronize(strict=True)(plain)
    synced = synchronize(sample)
    assert not is_generator(synced)
    with pytest.raises(ScopeError):
        synced("val")  # no loop anywhere
    assert run(spawn_greenlet(synced, 5)) == 5
    coroutine = synchronize(strict=False)(sample)("val")
    assert is_generator(coroutine)
    assert run(coroutine) == "val"


def test_scope_error_message_is_public_and_used(run):
    """SCOPE_ERROR_MESSAGE is the text a ScopeError in the loop's greenlet carries."""

    @synchronize
    def named():
        yield from asyncio.sleep(0)

    async def on_loop():
        with pytest.raises(ScopeError) as raised:
            named()
        return str(raised.value)

    message = run(on_loop())
    name = f"synchronized {named.__qualname__}()"
    assert message == SCOPE_ERROR_MESSAGE.format(name)


# -- tweens ----------------------------------------------------------------------


def async_tween_factory(handler, registry):
    """The original's example of a tween that waits by hand."""

    def async_action():
        yield from asyncio.sleep(0.01)
        return 12

    def async_tween(request):
        this = greenlet.getcurrent()
        future = asyncio.get_running_loop().create_future()
        sub_task = asyncio.ensure_future(run_in_greenlet(this, future, async_action))
        this.parent.switch(sub_task)
        assert future.result() == 12
        return future

    return async_tween


def passing_tween_factory(handler, registry):
    return handler


@pytest.mark.parametrize(
    "order",
    [["async"], ["async", "sync"], ["sync", "async"], ["sync", "async", "sync"]],
)
def test_tween_chains_with_the_hand_off(run, order):
    """The original's tween tests: a hand-off tween with plain tweens around it."""
    tweens = Tweens()
    for i, kind in enumerate(order):
        factory = async_tween_factory if kind == "async" else passing_tween_factory
        tweens.add_implicit(f"{kind}{i}", factory)
    assert run(spawn_greenlet(tweens(None, None), None)) == 12


def test_example_tween_with_the_originals_arguments(run):
    """The example tween passes through whatever its handler returns."""
    tween = coroutine_logger_tween_factory(lambda request: request, None)
    assert run(spawn_greenlet(tween, None)) is None


def lookup_tween_factory(handler, registry):
    """An original-style tween in a real application: waits, then calls on."""

    def lookup_tween(request):
        request.looked_up = hand_off(sample, "found")
        return handler(request)

    return lookup_tween


def test_original_style_tween_in_an_application(run):
    """The view's own response comes back through a hand-off tween (not None)."""

    def coroutine_view(request):
        yield from asyncio.sleep(0)
        return Response(f"coroutine saw {request.looked_up}")

    def plain_view(request):
        return Response(f"plain saw {request.looked_up}")

    def setup(config):
        config.add_tween(f"{__name__}.lookup_tween_factory")
        config.add_route("co", "/co")
        config.add_route("plain", "/plain")
        config.add_view(coroutine_view, route_name="co")
        config.add_view(plain_view, route_name="plain")

    app = make_app(setup)
    first = run(get(app, "/co"))
    assert (first.status_code, first.text) == (200, "coroutine saw found")
    second = run(get(app, "/plain"))
    assert (second.status_code, second.text) == (200, "plain saw found")


# -- traversal -------------------------------------------------------------------


class DummyResource:
    """The original's traversal test resource: a synchronized generator lookup."""

    def __init__(self, name, parent):
        self.__name__ = name
        self.__parent__ = parent
        self._dict = {}

    @synchronize
    def __getitem__(self, key):
        yield from asyncio.sleep(0)
        return self._dict[key]

    def add_child(self, name):
        self._dict[name] = DummyResource(name, self)
        return self._dict[name]


@pytest.mark.parametrize(
    ("path", "traversed", "view_name"),
    [(["cat"], ("cat",), ""), ([""], (), ""), (["cat", "dog"], ("cat", "dog"), ""),
     (["cat", "mouse"], ("cat",), "mouse")],
)  # fmt: skip
def test_pyramid_traverse_over_synchronized_lookups(run, path, traversed, view_name):
    """pyramid.traversal.traverse walks synchronized generator lookups."""
    root = DummyResource("root", None)
    root.add_child("cat").add_child("dog")
    out = run(spawn_greenlet(pyramid_traverse, root, path))
    assert tuple(out["traversed"]) == traversed
    assert out["view_name"] == view_name
    if path == [""]:
        assert out["context"] is out["root"]


class HandOffTraverser(ResourceTreeTraverser):
    """A traverser in the original's style: the walk runs on the loop."""

    def __call__(self, request):
        path = request.path_info or SLASH
        if path == SLASH:
            return super().__call__(request)
        vpath_tuple = split_path_info(path)
        root = self.root
        args = (0, root, "@@", vpath_tuple, -1, root, (), root, ())
        return hand_off(traverse, *args)


class GeneratorResource:
    """Children looked up by a legacy generator method."""

    def __init__(self, name="", parent=None):
        self.__name__ = name
        self.__parent__ = parent

    def __getitem__(self, name):
        if name == "missing":
            raise KeyError(name)
        return self.child(name)

    def child(self, name):
        return GeneratorResource(name, self)


class AsyncResource(GeneratorResource):
    async def __getitem__(self, name):
        await asyncio.sleep(0)
        return GeneratorResource.__getitem__(self, name)

    def child(self, name):
        return AsyncResource(name, self)


def test_hand_off_traverser_in_an_application(run):
    """A traverser that hands traverse() to the loop finds contexts and views."""

    def setup(config):
        config.set_root_factory(lambda request: AsyncResource())
        config.registry.registerAdapter(HandOffTraverser, (Interface,), ITraverser)
        config.add_view(lambda context, request: Response(f"at {context.__name__}"))
        config.add_view(
            lambda context, request: Response(f"edit {context.__name__}"), name="edit"
        )

    app = make_app(setup)
    assert run(get(app, "/a/b")).text == "at b"
    assert run(get(app, "/a/@@edit")).text == "edit a"
    assert run(get(app, "/a/missing/edit")).status_code == 404


# -- authentication --------------------------------------------------------------


class GroupPolicy(CallbackAuthenticationPolicy):
    """The original's test policy: a fixed userid and a coroutine callback."""

    def __init__(self, callback=None):
        self.callback = callback
        self.debug = False

    def unauthenticated_userid(self, request):
        return "theone"

    def remember(self, request, userid, **kw):
        return [("X-Remember", userid)]

    def forget(self, request, **kw):
        return [("X-Forget", "1")]


def groups(userid, request):
    yield from asyncio.sleep(0)
    return ["test_user"]


PRINCIPALS = ["system.Everyone", "system.Authenticated", "theone", "test_user"]


def test_auth_proxy_answers_plain_code(run):
    """From plain code every method returns a value."""
    policy = authn_policy_factory(GroupPolicy, groups)
    request = testing.DummyRequest()

    def plain():
        return (
            policy.unauthenticated_userid(request),
            policy.authenticated_userid(request),
            policy.effective_principals(request),
            policy.remember(request, "theone"),
            policy.forget(request),
        )

    assert run(spawn_greenlet(plain)) == (
        "theone", "theone", PRINCIPALS, [("X-Remember", "theone")], [("X-Forget", "1")]
    )  # fmt: skip


def test_auth_proxy_is_awaitable_from_coroutine_code(run):
    """From coroutine code every proxied method is awaited, as in the original."""
    policy = authn_policy_factory(GroupPolicy, groups)
    request = testing.DummyRequest()

    @synchronize
    def from_coroutine():
        return (
            (yield from policy.unauthenticated_userid(request)),
            (yield from policy.authenticated_userid(request)),
            (yield from policy.effective_principals(request)),
            (yield from policy.remember(request, "theone")),
            (yield from policy.forget(request)),
        )

    assert run(spawn_greenlet(from_coroutine)) == (
        "theone", "theone", PRINCIPALS, [("X-Remember", "theone")], [("X-Forget", "1")]
    )  # fmt: skip


def test_authn_policy_factory_without_a_callback(run):
    """authn_policy_factory(Policy) wraps the policy without a callback."""
    policy = authn_policy_factory(GroupPolicy)
    assert isinstance(policy, CoroutineAuthenticationPolicyProxy)

    async def on_loop():
        return await policy.effective_principals(testing.DummyRequest())

    assert run(on_loop()) == ["system.Everyone", "system.Authenticated", "theone"]


# -- configuration ---------------------------------------------------------------


def test_include_before_any_settings_exist():
    """A configurator over a bare Registry() includes aiopyramid."""
    config = Configurator(registry=Registry())
    config.include("aiopyramid")
    config.commit()
    assert config.registry.settings is None or "tm.manager_hook" not in (
        config.registry.settings
    )


@pytest.mark.parametrize("kind", ["plain", "coroutine"])
def test_mapped_views_accept_dummy_requests(run, kind):
    """Unit tests of views call them with pyramid.testing.DummyRequest."""

    def plain(request):
        return Response(f"plain {request.path}")

    def coroutine(request):
        yield from asyncio.sleep(0)
        return Response(f"coroutine {request.path}")

    view = plain if kind == "plain" else coroutine
    with testing.testConfig() as config:
        config.include("aiopyramid")
        mapped = config._derive_view(view)
        request = testing.DummyRequest(path="/dummy")
        answer = run(spawn_greenlet(mapped, None, request))
    assert answer.text == f"{kind} /dummy"


def test_original_mapper_method_names():
    """run_in_coroutine_view, run_in_executor_view, is_class_method_coroutine."""

    class ClassView:
        def __init__(self, request):
            self.request = request

        def __call__(self):
            yield from asyncio.sleep(0)
            return "class"

    mapper = CoroutineOrExecutorMapper()
    assert mapper.is_class_method_coroutine(ClassView)
    assert not mapper.is_class_method_coroutine(lambda request: None)
    coroutine_view = mapper.run_in_coroutine_view(lambda context, request: sample(1))
    executor_view = mapper.run_in_executor_view(lambda context, request: 2)

    def both():
        request = testing.DummyRequest()
        return coroutine_view(None, request), executor_view(None, request)

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(spawn_greenlet(both)) == (1, 2)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def test_launch_websocket_view_maps_as_the_mapper_does():
    """launch_websocket_view(view) serves the view as mapping it does."""
    from aiopyramid.websocket.config import UWSGIWebsocketMapper, WebsocketMapper
    from tests.apps.websockets import legacy_echo as echo
    from tests.harness.asgi_client import texts, websocket_conversation

    launched = WebsocketMapper().launch_websocket_view(echo)
    assert callable(launched)
    assert callable(UWSGIWebsocketMapper().launch_websocket_view(echo))

    def setup(config):
        config.add_route("echo", "/echo")
        config.add_view(lambda request: launched(None, request), route_name="echo")

    from aiopyramid.asgi import make_asgi_app

    sent = websocket_conversation(make_asgi_app(make_app(setup)), "/echo", ["old"])
    assert texts(sent) == ["old"]


def test_authn_policy_factory_takes_the_originals_keyword(run):
    """authn_policy_factory(Policy, coroutine=callback), as the original named it."""
    policy = authn_policy_factory(GroupPolicy, coroutine=groups)

    async def on_loop():
        return await policy.effective_principals(testing.DummyRequest())

    assert run(on_loop()) == PRINCIPALS
