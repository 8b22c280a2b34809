"""Tests of the view mappers and includeme, through real Pyramid apps."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound
from pyramid.response import Response
from pyramid.view import view_config, view_defaults

from aiopyramid.config import (
    CoroutineMapper,
    CoroutineOrExecutorMapper,
    CoroutineOrGreenletMapper,
    ExecutorMapper,
    is_coroutine_view,
)
from aiopyramid.helpers import spawn_greenlet, synchronize
from tests.harness.inprocess import get, make_app

MAIN = threading.get_ident()


def where() -> str:
    return "loop" if threading.get_ident() == MAIN else "thread"


# -- views of every shape ----------------------------------------------------------


async def async_view(request):
    await asyncio.sleep(0)
    return Response(where())


def legacy_view(request):
    yield from asyncio.sleep(0)
    return Response(where())


def plain_view(request):
    return Response(where())


async def async_context_view(context, request):
    await asyncio.sleep(0)
    return Response(where())


def wrapper_of(func):
    @functools.wraps(func)
    def wrapper(*args):
        return func(*args)

    return wrapper


class AsyncCallable:
    async def __call__(self, request):
        await asyncio.sleep(0)
        return Response(where())


class AsyncClassView:
    def __init__(self, request):
        self.request = request

    async def __call__(self):
        await asyncio.sleep(0)
        return Response(where())


class ClassWithMethods:
    def __init__(self, context, request):
        self.request = request

    async def coroutine(self):
        await asyncio.sleep(0)
        return Response(where())

    def plain(self):
        return Response(where())


@synchronize
async def synchronized_view(context, request):
    await asyncio.sleep(0)
    return Response(where())


@synchronize
async def synchronized_request_view(request):
    await asyncio.sleep(0)
    return Response(where())


COROUTINE_VIEWS = {
    "async def": (async_view, None),
    "legacy generator": (legacy_view, None),
    "context and request": (async_context_view, None),
    "partial": (functools.partial(async_view), None),
    "wraps wrapper": (wrapper_of(async_context_view), None),
    "callable instance": (AsyncCallable(), None),
    "class": (AsyncClassView, None),
    "class attr": (ClassWithMethods, "coroutine"),
    "synchronized": (synchronized_view, None),
    "synchronized, request only": (synchronized_request_view, None),
    "wraps wrapper, request only": (wrapper_of(async_view), None),
}
PLAIN_VIEWS = {
    "function": (plain_view, None),
    "wraps wrapper, request only": (wrapper_of(plain_view), None),
    "class attr": (ClassWithMethods, "plain"),
    "lambda": (lambda request: Response(where()), None),
}


@pytest.mark.parametrize("name", COROUTINE_VIEWS)
def test_coroutine_views_are_recognised_and_run_on_the_loop(run, name):
    """Every shape of coroutine view is a coroutine view and runs on the loop."""
    view, attr = COROUTINE_VIEWS[name]
    assert is_coroutine_view(view, attr)
    app = make_app(lambda c: c.add_view(view, attr=attr, name="v"))
    assert run(get(app, "/v")).text == "loop"


@pytest.mark.parametrize("name", PLAIN_VIEWS)
def test_plain_views_run_in_the_executor(run, name):
    """Plain views are not coroutine views and run on a pool thread."""
    view, attr = PLAIN_VIEWS[name]
    assert not is_coroutine_view(view, attr)
    app = make_app(lambda c: c.add_view(view, attr=attr, name="v"))
    assert run(get(app, "/v")).text == "thread"


def test_lambda_returning_coroutine_is_awaited(run):
    """A plain callable that returns a coroutine has that coroutine awaited."""
    app = make_app(lambda c: c.add_view(lambda request: async_view(request), name="v"))
    assert run(get(app, "/v")).text == "loop"


def test_view_config_on_class_methods(run):
    """view_config on methods of a class (coroutine and plain) works."""

    @view_defaults(renderer="string")
    class Views:
        def __init__(self, request):
            self.request = request

        @view_config(name="a")
        async def a(self):
            await asyncio.sleep(0)
            return "async " + where()

        @view_config(name="p")
        def p(self):
            return "plain " + where()

    def setup(config):
        config.add_view(Views, attr="a", name="a", renderer="string")
        config.add_view(Views, attr="p", name="p", renderer="string")

    app = make_app(setup)
    assert run(get(app, "/a")).text == "async loop"
    assert run(get(app, "/p")).text == "plain thread"


# -- the executor -------------------------------------------------------------------


def test_plain_view_does_not_block_coroutine_views(run):
    """A plain view sleeping 0.5 s leaves the loop free for a coroutine view."""
    finished = []

    def slow(request):
        time.sleep(0.5)  # the input: a plain view blocking its thread
        finished.append("slow")
        return Response("slow")

    async def quick(request):
        await asyncio.sleep(0.05)
        finished.append("quick")
        return Response("quick")

    def setup(config):
        config.add_view(slow, name="slow")
        config.add_view(quick, name="quick")

    app = make_app(setup)

    async def both():
        return await asyncio.gather(get(app, "/slow"), get(app, "/quick"))

    run(both())
    assert finished == ["quick", "slow"]


def test_executor_view_reads_post_and_loses_file_wrapper(run):
    """request.POST works in the thread and wsgi.file_wrapper is gone."""

    def form(request):
        return {
            "x": request.POST["x"],
            "file_wrapper": "wsgi.file_wrapper" in request.environ,
        }

    app = make_app(lambda c: c.add_view(form, name="f", renderer="json"))
    response = run(
        get(
            app,
            "/f",
            method="POST",
            POST={"x": "y"},
            environ={"wsgi.file_wrapper": object()},
        )
    )
    assert response.json == {"x": "y", "file_wrapper": False}


def test_max_workers_setting_sizes_a_pool_of_its_own(run):
    """aiopyramid.executor.max_workers gives plain views a dedicated pool."""
    app = make_app(
        lambda c: c.add_view(
            lambda r: Response(threading.current_thread().name), name="v"
        ),
        **{"aiopyramid.executor.max_workers": "3"},
    )
    assert run(get(app, "/v")).text.startswith("aiopyramid")


@pytest.mark.parametrize("value", ["zero", "0", "-2"])
def test_bad_max_workers_is_a_configuration_error(value):
    """A max_workers that is not a positive whole number is refused with advice."""
    with pytest.raises(ConfigurationError, match=r"positive number.*whole number"):
        make_app(lambda c: None, **{"aiopyramid.executor.max_workers": value})


def test_loop_default_executor_is_honoured(run, loop):
    """loop.set_default_executor(...) decides where plain views run by default."""
    pool = ThreadPoolExecutor(max_workers=150, thread_name_prefix="custom")
    loop.set_default_executor(pool)
    app = make_app(
        lambda c: c.add_view(
            lambda r: Response(threading.current_thread().name), name="v"
        )
    )
    assert run(get(app, "/v")).text.startswith("custom")


def test_plain_view_outside_loop_runs_inline():
    """With no loop running (a plain WSGI server thread), plain views just run."""
    from webob import Request

    app = make_app(lambda c: c.add_view(plain_view, name="v"))
    assert Request.blank("/v").get_response(app).text == "loop"


def named_wrapper_of(func):
    """A wraps wrapper that names its arguments: Pyramid calls it with both."""

    @functools.wraps(func)
    def wrapper(context, request):
        return func(request)

    return wrapper


def test_a_wrapper_naming_context_and_request_gets_both(run):
    """Only pure (*args) wrappers are looked through: a named signature is kept."""
    app = make_app(lambda c: c.add_view(named_wrapper_of(async_view), name="v"))
    assert run(get(app, "/v")).text == "loop"


def pair_view(context, request):
    return ("plain", context, request)


async def async_pair_view(context, request):
    await asyncio.sleep(0)
    return ("coroutine", context, request)


PLAIN_MAPPERS = [CoroutineOrExecutorMapper, CoroutineOrGreenletMapper, ExecutorMapper]


@pytest.mark.parametrize("mapper", PLAIN_MAPPERS, ids=lambda m: m.__name__)
def test_mapped_views_take_request_none_as_pyramids_mapper_does(run, mapper):
    """view(context, None), as in Pyramid's own tests, calls the view, loop or not."""
    mapped = mapper()(pair_view)
    assert mapped("context", None) == ("plain", "context", None)
    assert run(spawn_greenlet(mapped, "context", None)) == ("plain", "context", None)


@pytest.mark.parametrize("timed", [False, True], ids=["untimed", "timed"])
def test_mapped_coroutine_views_take_request_none(run, timed):
    """A coroutine view called with request=None runs, timed or not."""
    mapper = CoroutineMapper()
    mapper.slow_seconds = 10.0 if timed else None
    mapped = mapper(async_pair_view)
    assert run(spawn_greenlet(mapped, "ctx", None)) == ("coroutine", "ctx", None)


# -- choosing a mapper ---------------------------------------------------------


def test_coroutine_mapper_refuses_plain_views():
    """CoroutineMapper refuses a plain view at configuration time."""
    with pytest.raises(ConfigurationError, match="ExecutorMapper"):
        make_app(lambda c: c.add_view(plain_view, mapper=CoroutineMapper))


def test_executor_mapper_refuses_coroutine_views():
    """ExecutorMapper refuses a coroutine view at configuration time."""
    with pytest.raises(ConfigurationError, match="CoroutineMapper"):
        make_app(lambda c: c.add_view(async_view, mapper=ExecutorMapper))


def test_executor_mapper_runs_plain_views_in_threads(run):
    """ExecutorMapper, chosen per view, runs the view on a pool thread."""
    app = make_app(lambda c: c.add_view(plain_view, name="v", mapper=ExecutorMapper))
    assert run(get(app, "/v")).text == "thread"


def test_view_mapper_class_attribute(run):
    """A __view_mapper__ class attribute picks the mapper for a class view."""

    class Strict(AsyncClassView):
        __view_mapper__ = CoroutineMapper

    class Wrong:
        __view_mapper__ = CoroutineMapper

        def __init__(self, request):
            pass

        def __call__(self):
            return Response("")  # pragma: no cover

    app = make_app(lambda c: c.add_view(Strict, name="v"))
    assert run(get(app, "/v")).text == "loop"
    with pytest.raises(ConfigurationError):
        make_app(lambda c: c.add_view(Wrong))


def test_includeme_sets_default_mapper_and_it_can_be_restored(run):
    """include('aiopyramid') sets the mapper; set_view_mapper(None) undoes it."""
    from pyramid.interfaces import IViewMapperFactory

    with Configurator() as config:
        config.include("aiopyramid")
    assert config.registry.queryUtility(IViewMapperFactory) is CoroutineOrExecutorMapper

    with Configurator() as config:
        config.include("aiopyramid")
        config.set_view_mapper(None)
        config.add_view(plain_view, name="v")
        config.add_view(async_view, name="a", mapper=CoroutineMapper)
    app = config.make_wsgi_app()
    assert run(get(app, "/v")).text == "loop"  # Pyramid's own mapper: inline
    assert run(get(app, "/a")).text == "loop"


# -- what Pyramid does around a view -------------------------------------------------


def test_renderers_and_request_response(run):
    """Returned dicts are rendered; request.response changes are kept."""

    async def data(request):
        await asyncio.sleep(0)
        request.response.headers["X-Async"] = "yes"
        request.response.status_int = 201
        return {"answer": 42}

    async def text(request):
        await asyncio.sleep(0)
        return "hello"

    def setup(config):
        config.add_view(data, name="json", renderer="json")
        config.add_view(text, name="text", renderer="string")

    app = make_app(setup)
    response = run(get(app, "/json"))
    assert response.json == {"answer": 42}
    assert response.status_int == 201
    assert response.headers["X-Async"] == "yes"
    assert run(get(app, "/text")).text == "hello"


def test_template_renderer(run, tmp_path):
    """A coroutine view's dict renders through a template renderer."""
    template = tmp_path / "page.txt"
    template.write_text("")

    class TemplateRenderer:
        def __init__(self, info):
            self.path = info.name

        def __call__(self, value, system):
            return f"{value['name']} rendered by {system['renderer_name']}"

    async def page(request):
        await asyncio.sleep(0)
        return {"name": "page"}

    def setup(config):
        config.add_renderer(".txt", TemplateRenderer)
        config.add_view(page, name="p", renderer=str(template))

    app = make_app(setup)
    assert run(get(app, "/p")).text == f"page rendered by {template}"


class Policy:
    def identity(self, request):
        return request.headers.get("X-User")

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        return self.identity(request) == "admin"

    def remember(self, request, userid, **kw):
        return []  # pragma: no cover

    def forget(self, request, **kw):
        return []  # pragma: no cover


def test_permissions_http_cache_decorator_and_predicates(run):
    """Permissions, http_cache, decorator= and predicates wrap coroutine views."""

    def shout(view):
        def shouting(context, request):
            response = view(context, request)
            response.text = response.text.upper()
            return response

        return shouting

    async def secret(request):
        await asyncio.sleep(0)
        return Response("secret")

    def setup(config):
        config.set_security_policy(Policy())
        config.add_view(
            secret,
            name="s",
            permission="view",
            http_cache=60,
            decorator=shout,
            request_method="GET",
        )

    app = make_app(setup)
    allowed = run(get(app, "/s", headers={"X-User": "admin"}))
    assert allowed.text == "SECRET"
    assert allowed.cache_control.max_age == 60
    assert run(get(app, "/s", headers={"X-User": "eve"})).status_int == 403
    assert (
        run(get(app, "/s", method="POST", headers={"X-User": "admin"})).status_int
        == 404
    )


@pytest.mark.parametrize("kind", ["coroutine", "plain"])
def test_exception_views(run, kind):
    """Exceptions from coroutine views reach exception views of either kind."""

    async def failing(request):
        await asyncio.sleep(0)
        raise KeyError("missing")

    async def async_handler(exc, request):
        await asyncio.sleep(0)
        return Response(f"handled {exc.args[0]} on the " + where(), status=409)

    def plain_handler(exc, request):
        return Response(f"handled {exc.args[0]} on a " + where(), status=409)

    def setup(config):
        config.add_view(failing, name="f")
        handler = async_handler if kind == "coroutine" else plain_handler
        config.add_exception_view(handler, context=KeyError)

    app = make_app(setup)
    response = run(get(app, "/f"))
    assert response.status_int == 409
    assert response.text.startswith("handled missing")


def test_http_exceptions_from_coroutine_views(run):
    """Raising or returning HTTP exceptions from coroutine views works as usual."""

    async def forbidden(request):
        await asyncio.sleep(0)
        raise HTTPForbidden()

    async def missing(request):
        await asyncio.sleep(0)
        return HTTPNotFound()

    def setup(config):
        config.add_view(forbidden, name="f")
        config.add_view(missing, name="m")

    app = make_app(setup)
    assert run(get(app, "/f")).status_int == 403
    assert run(get(app, "/m")).status_int == 404


def test_unexpected_error_from_coroutine_view_propagates(run):
    """Without an exception view, the coroutine's error propagates to the server."""

    async def failing(request):
        await asyncio.sleep(0)
        raise RuntimeError("no handler")

    app = make_app(lambda c: c.add_view(failing, name="f"))
    with pytest.raises(RuntimeError, match="no handler"):
        run(get(app, "/f"))
