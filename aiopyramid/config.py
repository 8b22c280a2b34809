"""View mappers that run coroutine views on the loop and plain views in threads.

A view mapper is the innermost of Pyramid's view derivers: what it returns is
secured, cached, decorated and rendered like any view.  These mappers build on
Pyramid's :class:`~pyramid.viewderivers.DefaultViewMapper` (which already
knows about classes, ``attr`` and request-only views) and only change how the
view is called:

* a *coroutine view* is called in the request's greenlet; the coroutine it
  returns runs on the event loop while the greenlet waits;
* a *plain view* runs on a thread of the executor while the greenlet waits, so
  blocking code never stops the loop.

Whatever the view returns, if it turns out to be awaitable (a lambda or
decorator that returns a coroutine), it is awaited before Pyramid sees it.

With the ``aiopyramid.debug.slow_callback_ms`` setting, a coroutine view's
steps (the call, then each stretch of its coroutine between two awaits) are
timed, and a step that holds the loop longer than that is logged, warning
level, on the ``aiopyramid.slow`` logger, with the view's name.  Without
the setting, views are mapped exactly as before and nothing is timed.
"""

from __future__ import annotations

import contextvars
import inspect
import time
import types
from concurrent.futures import Executor
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IViewMapper, IViewMapperFactory
from pyramid.threadlocal import get_current_registry
from pyramid.util import object_description
from pyramid.viewderivers import DefaultViewMapper, requestonly
from zope.interface import Interface, implementer, provider

from ._bridge import call_in_thread_greenlet, home_loop, running_loop, wait_for
from ._failures import VIEW_KEY
from ._settings import positive_setting
from ._slow_views import report_slow, slow_view_threshold, timed_steps
from ._startup import report_pool
from ._unwrap import allow_yield_from, takes_request_only, unwrap_view
from ._wsgi_input import make_seekable
from .helpers import is_generator

__all__ = [
    "AsyncioMapperBase",
    "CoroutineMapper",
    "CoroutineOrExecutorMapper",
    "CoroutineOrGreenletMapper",
    "ExecutorMapper",
    "IExecutor",
    "is_coroutine_view",
]

ViewCallable = Any  # (context, request) -> response


class IExecutor(Interface):
    """Marker for the :class:`concurrent.futures.Executor` that runs plain views.

    Registered by :func:`aiopyramid.includeme` when the
    ``aiopyramid.executor.max_workers`` setting is given; without it the
    loop's default executor is used.
    """


def is_coroutine_view(view: Any, attr: str | None = None) -> bool:
    """Return whether ``view`` (with ``attr``) is a coroutine view.

    True for ``async def`` functions, legacy generator functions, partials and
    ``functools.wraps`` wrappers of those, instances or classes whose
    ``__call__`` is one, and classes whose ``attr`` method is one.  A wrapper
    of a coroutine function may be plain: it either returns the coroutine
    (awaited by the mapper) or waits for it itself (a synchronized function),
    and both are fine to call in the request's greenlet.
    """
    return any(is_generator(func) for func in unwrap_view(view, attr))


def _await_result(result: Any, label: str) -> Any:
    # A coroutine (nearly always) is told apart without inspect's slower test.
    if type(result) is types.CoroutineType or inspect.isawaitable(result):
        return wait_for(result, label)
    return result


def _describe(view: Any) -> str:
    return getattr(view, "__qualname__", None) or repr(view)


@implementer(IViewMapper)
@provider(IViewMapperFactory)
class AsyncioMapperBase(DefaultViewMapper):
    """Base of the aiopyramid view mappers; subclasses choose how views run.

    :meth:`run_in_greenlet` and :meth:`run_in_executor` wrap a view mapped by
    Pyramid's default mapper.  Both return plain ``(context, request)``
    callables that hand Pyramid the view's final result.
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        # Views are mapped while the configuration is committed, with the
        # application's registry current: its settings say whether to time.
        settings = getattr(get_current_registry(), "settings", None) or {}
        #: Seconds a coroutine view step may hold the loop before it is
        #: logged (``None``: not timed).
        self.slow_seconds = slow_view_threshold(settings)

    def __call__(self, view: Any) -> ViewCallable:
        """Map ``view`` into a ``(context, request)`` callable."""
        mapped = super().__call__(view)
        if is_coroutine_view(view, self.attr):
            allow_yield_from(view, self.attr)
            return self.run_in_greenlet(view, mapped)
        return self.run_plain(view, mapped)

    def map_nonclass(self, view: Any) -> ViewCallable:
        """Pyramid's mapping of a function view, seeing through its wrappers.

        A ``functools.wraps`` wrapper taking ``(*args, **kwargs)`` (such as
        :func:`~aiopyramid.helpers.synchronize`'s) of a view that takes only
        ``request`` is called with the request alone, as the view would be.
        """
        if not requestonly(view, self.attr) and takes_request_only(view, self.attr):
            mapped = self.map_nonclass_requestonly(view)
            mapped.__text__ = object_description(view)
            return mapped
        return super().map_nonclass(view)

    def run_plain(self, view: Any, mapped: ViewCallable) -> ViewCallable:
        """Wrap a plain view: in the executor (:meth:`run_in_executor`).

        :class:`CoroutineOrGreenletMapper` calls it in the request's greenlet
        instead (:meth:`run_plain_in_greenlet`).
        """
        return self.run_in_executor(view, mapped)

    def is_class_method_coroutine(self, view: Any) -> bool:
        """Return whether ``view`` is a class whose view method is a coroutine.

        The method is the one named by this mapper's ``attr`` (``__call__``
        without it).  Kept from the original library; :func:`is_coroutine_view`
        answers for every kind of view.
        """
        return inspect.isclass(view) and is_coroutine_view(view, self.attr)

    def run_in_coroutine_view(self, view: ViewCallable) -> ViewCallable:
        """Wrap a ``(context, request)`` callable that returns a coroutine.

        The original library's name: the same as :meth:`run_in_greenlet`
        for a view that Pyramid's default mapper has already mapped.
        """
        return self.run_in_greenlet(view, view)

    def run_in_executor_view(self, view: ViewCallable) -> ViewCallable:
        """Wrap a plain ``(context, request)`` callable to run in the executor.

        The original library's name: the same as :meth:`run_in_executor`
        for a view that Pyramid's default mapper has already mapped.
        """
        return self.run_in_executor(view, view)

    def run_in_greenlet(self, view: Any, mapped: ViewCallable) -> ViewCallable:
        """Call ``mapped`` in the request's greenlet and wait for its coroutine.

        The coroutine runs on the event loop, in the request's context.  The
        request body is read first, here: on the loop, some servers (uWSGI)
        cannot read ``wsgi.input``, which belongs to the request's greenlet.
        """

        limit = self.slow_seconds
        name = _describe(view)
        label = f"coroutine view {name}"  # for error messages
        if limit is None:

            def coroutine_view(context: Any, request: Any) -> Any:
                if request is not None:  # see _begin
                    request.environ[VIEW_KEY] = label
                    make_seekable(request)
                return _await_result(mapped(context, request), label)

            return _preserve(coroutine_view, mapped)

        def timed_coroutine_view(context: Any, request: Any) -> Any:
            _begin(request, label)
            started = time.perf_counter()
            result = mapped(context, request)
            report_slow(name, time.perf_counter() - started, limit)
            if inspect.isawaitable(result):
                result = wait_for(timed_steps(result, name, limit), label)
            return result

        return _preserve(timed_coroutine_view, mapped)

    def run_in_executor(self, view: Any, mapped: ViewCallable) -> ViewCallable:
        """Call ``mapped`` on an executor thread while the request's greenlet waits.

        The thread runs in a copy of the request's context, so Pyramid's
        current request and registry, and the caller's context variables, are
        there too.  The request body is read first (so ``request.POST`` works
        in the thread) and ``wsgi.file_wrapper`` is removed from the environ.
        Called where no event loop runs (already on a thread), the view is
        simply called.
        """
        label = f"view {_describe(view)}"  # for error messages

        def executor_view(context: Any, request: Any) -> Any:
            loop = running_loop()
            if loop is None:
                if request is not None:  # see _begin
                    request.environ[VIEW_KEY] = label
                return _await_result(mapped(context, request), label)
            executor = None
            if request is not None:  # see _begin
                _begin(request, label)
                request.environ.pop("wsgi.file_wrapper", None)
                executor = request.registry.queryUtility(IExecutor)
            thread_context = contextvars.copy_context()
            thread_context.run(home_loop.set, loop)
            # Crossing to a pool thread: the greenlet waits for the future on
            # the loop, which keeps serving other requests meanwhile.  In the
            # thread the view runs in a greenlet of its own, in which
            # SQLAlchemy's sync API may still use an asyncio driver.
            future = loop.run_in_executor(
                executor,
                thread_context.run,
                call_in_thread_greenlet,
                mapped,
                context,
                request,
            )
            result = wait_for(future, label)
            return _await_result(result, label)

        return _preserve(executor_view, mapped)

    def run_plain_in_greenlet(self, view: Any, mapped: ViewCallable) -> ViewCallable:
        """Call a plain view in the request's greenlet, on the loop's thread.

        For applications whose I/O goes through asyncio drivers (SQLAlchemy's
        sync API on ``postgresql+asyncpg`` or ``sqlite+aiosqlite``, or
        :func:`~aiopyramid.helpers.synchronize`-d coroutines): each wait
        yields to the loop, no thread is used.  Code that blocks here blocks
        every request of the worker.
        """
        label = f"view {_describe(view)}"  # for error messages

        def greenlet_view(context: Any, request: Any) -> Any:
            if request is not None:  # see _begin
                request.environ[VIEW_KEY] = label
            return _await_result(mapped(context, request), label)

        return _preserve(greenlet_view, mapped)


def _begin(request: Any, label: str) -> None:
    """Name the view for error reports and read the body, if there is a request.

    Pyramid's own tests call mapped views as ``view(context, None)``, which
    its default mapper accepts: so do these mappers' wrappers.
    """
    if request is not None:
        request.environ[VIEW_KEY] = label
        make_seekable(request)


def _preserve(wrapper: ViewCallable, mapped: ViewCallable) -> ViewCallable:
    text = getattr(mapped, "__text__", None)
    if text is not None:
        wrapper.__text__ = text  # type: ignore[attr-defined]
    return wrapper


class CoroutineOrExecutorMapper(AsyncioMapperBase):
    """Run coroutine views on the loop and every other view in the executor.

    The default view mapper once ``config.include('aiopyramid')`` has run
    (unless ``aiopyramid.mode`` is ``greenlet``); choose it for one view with
    ``view_config(mapper=CoroutineOrExecutorMapper)``.
    """


class CoroutineOrGreenletMapper(AsyncioMapperBase):
    """Run coroutine views on the loop and plain views in the request's greenlet.

    The default view mapper with ``aiopyramid.mode = greenlet``; choose it for
    one view with ``view_config(mapper=CoroutineOrGreenletMapper)``
    (:class:`CoroutineOrExecutorMapper` does the opposite).
    """

    def run_plain(self, view: Any, mapped: ViewCallable) -> ViewCallable:
        """Wrap a plain view to run in the request's greenlet."""
        return self.run_plain_in_greenlet(view, mapped)


class CoroutineMapper(AsyncioMapperBase):
    """Accept only coroutine views; anything else is a configuration error."""

    def __call__(self, view: Any) -> ViewCallable:
        """Map a coroutine view, refusing any other kind."""
        if not is_coroutine_view(view, self.attr):
            raise ConfigurationError(
                f"CoroutineMapper maps coroutine views only, and "
                f"{_describe(view)} is a plain callable. Define it with "
                "`async def`, or map it with ExecutorMapper "
                "(view_config(mapper=ExecutorMapper))."
            )
        return super().__call__(view)


class ExecutorMapper(AsyncioMapperBase):
    """Run every view in the executor; coroutine views are refused."""

    def __call__(self, view: Any) -> ViewCallable:
        """Map a plain view, refusing coroutine views."""
        if is_coroutine_view(view, self.attr):
            raise ConfigurationError(
                f"ExecutorMapper runs plain views in threads, and "
                f"{_describe(view)} is a coroutine view. Map it with "
                "CoroutineMapper or CoroutineOrExecutorMapper instead."
            )
        mapped = DefaultViewMapper.__call__(self, view)
        return self.run_in_executor(view, mapped)


def executor_from_settings(
    settings: dict[str, Any], mode: str = "executor"
) -> Executor | None:
    """Build the executor that ``aiopyramid.executor.max_workers`` asks for.

    ``mode`` (``aiopyramid.mode``) says, in the start-up log, what runs there.
    """
    max_workers = positive_setting(
        settings,
        "aiopyramid.executor.max_workers",
        int,
        "Set it to the number of threads for plain views (a whole number), or "
        "leave it out to use the event loop's default executor.",
    )
    report_pool(max_workers, mode)
    if max_workers is None:
        return None
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aiopyramid")
