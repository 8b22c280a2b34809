"""An application traced by OpenTelemetry and reported to Sentry, for the tests.

Served as ``tests.apps.observed:main()`` (the worker) and
``tests.apps.observed:asgi`` (uvicorn, through ``make_asgi_app``) to
``tests/test_observability.py``.  The real SDKs: OpenTelemetry's with an
in-memory exporter, whose finished spans ``/spans`` returns (a test-only
view, left out of tracing), and Sentry's with the DSN in
``AIOPYRAMID_TEST_SENTRY_DSN``.  Every view tags what it does with the
``i`` of its query string, so the test can tell whose each span is.
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import sentry_sdk
from opentelemetry import trace
from opentelemetry.instrumentation.asyncio import AsyncioInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.pyramid import PyramidInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from pyramid.config import Configurator
from pyramid.response import Response
from sentry_sdk.integrations.pyramid import PyramidIntegration

from aiopyramid.asgi import make_asgi_app
from aiopyramid.helpers import spawn_greenlet, synchronize
from aiopyramid.sentry import AiopyramidIntegration

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)
tracer = trace.get_tracer("tests.apps.observed")
#: Requests of /slow that have started (for the test to abandon), that an
#: ``except Exception`` caught (none should), and whose ``finally`` ran.
STARTED: list[str] = []
CAUGHT: list[str] = []
FINISHED: list[str] = []


def _child(name: str, request) -> trace.Span:
    """A child span of the current one, tagged with the request's ``i``."""
    return tracer.start_as_current_span(name, attributes={"i": request.params["i"]})


def _tag(request) -> str:
    sentry_sdk.set_tag("i", request.params["i"])
    return request.params["i"]


async def coro(request):
    """A coroutine view: a span around an await, and an outgoing httpx call."""
    i = _tag(request)
    with _child("coro.sleep", request):
        await asyncio.sleep(0.001)
    with _child("coro.call", request):
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{request.host_url}/echo?i={i}")
    return Response(answer.text)


def echo(request):
    """The traceparent this request came with (a plain view, on a pool thread)."""
    _tag(request)
    with _child("echo", request):
        return Response(request.headers.get("traceparent", "-"))


@synchronize
async def fetch(request) -> str:
    """A coroutine waited for from plain code."""
    with _child("fetch", request):
        await asyncio.sleep(0.001)
        return "fetched"


def plain(request):
    """A plain view (pool thread) that waits for a synchronize'd coroutine."""
    _tag(request)
    with _child("plain", request):
        return Response(fetch(request))


def _in_greenlet(request) -> str:
    with _child("spawned", request):
        return fetch(request)


async def spawn(request):
    """A coroutine view that runs plain code with spawn_greenlet."""
    _tag(request)
    return Response(await spawn_greenlet(_in_greenlet, request))


async def fail(request):
    """A coroutine view that fails after a span."""
    i = _tag(request)
    with _child("fail", request):
        await asyncio.sleep(0)
    raise RuntimeError(f"failure of request {i}")


async def slow(request):
    """A view that outlives its client (the test leaves once it started)."""
    i = _tag(request)
    STARTED.append(i)
    try:
        with _child("slow", request):
            await asyncio.sleep(60)
    except Exception:  # must not see a client's leaving
        CAUGHT.append(i)
    finally:
        FINISHED.append(i)
    return Response("never")


def any_error(exc, request):
    """An exception view for every Exception: a client's leaving is none."""
    CAUGHT.append(request.params.get("i", "-"))
    return Response("caught", status=500)


def spans(request):
    """Finished spans and started slow requests as JSON (test-only, untraced)."""
    if "started" in request.params:  # what the test polls for: cheap
        return Response(
            json.dumps({"started": STARTED, "caught": CAUGHT, "finished": FINISHED}),
            content_type="application/json",
            charset="utf-8",
        )
    finished = [
        {
            "name": span.name,
            "kind": span.kind.name,
            "trace": format(span.context.trace_id, "032x"),
            "id": format(span.context.span_id, "016x"),
            "parent": format(span.parent.span_id, "016x") if span.parent else None,
            "status": span.status.status_code.name,
            "attributes": dict(span.attributes or {}),
        }
        for span in EXPORTER.get_finished_spans()
    ]
    body = json.dumps({"spans": finished, "started": STARTED})
    return Response(body, content_type="application/json", charset="utf-8")


def _sentry_sampler(context) -> float:
    return 0.0 if context["wsgi_environ"]["PATH_INFO"] == "/spans" else 1.0


def main(global_config=None, **settings):
    """The observed application, instrumented the way the docs say."""
    os.environ.setdefault("OTEL_PYTHON_PYRAMID_EXCLUDED_URLS", "spans")
    sentry_sdk.init(
        dsn=os.environ["AIOPYRAMID_TEST_SENTRY_DSN"],
        integrations=[PyramidIntegration(), AiopyramidIntegration()],
        traces_sampler=_sentry_sampler,
    )
    AsyncioInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        PyramidInstrumentor().instrument_config(config)
        config.include("aiopyramid.observability")
        # For requests with ?handled only: failures stay unhandled, for Sentry.
        config.add_exception_view(any_error, Exception, request_param="handled")
        for view in (coro, echo, plain, spawn, fail, slow, spans):
            config.add_route(view.__name__, f"/{view.__name__}")
            config.add_view(view, route_name=view.__name__)
    return config.make_wsgi_app()


def asgi():
    """The application through the ASGI bridge (uvicorn's ``--factory``)."""
    return make_asgi_app(main())
