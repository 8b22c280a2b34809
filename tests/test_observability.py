"""OpenTelemetry and Sentry under concurrency, with the real SDKs, on real servers.

200 interleaved requests (coroutine views, plain views on pool threads,
``synchronize``, ``spawn_greenlet``, failures, clients that leave) through
the worker and through uvicorn with ``make_asgi_app``: every span belongs to
its own request, incoming ``traceparent`` is joined and outgoing calls carry
it, a client's leaving is no error, and Sentry gets one transaction per
request and one event per failure, with that request's tags and data.
"""

from __future__ import annotations

import asyncio
import collections

import pytest

from tests.harness.observability import envelope_sink, request_i, span_mismatches
from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    python_module,
    require_module,
    running,
    wait_until,
    wait_until_async,
)

httpx = import_required("httpx")
#: What each request does, by ``i % len(KINDS)``.
KINDS = ("coro", "plain", "spawn", "fail", "plain", "coro", "spawn", "slow")
REQUESTS = 200
APP = "tests.apps.observed"


def _command(server: str, port: int) -> list[str]:
    if server == "worker":
        return gunicorn_command("--bind", f"127.0.0.1:{port}", f"{APP}:main()")
    return python_module(
        "uvicorn", "--factory", f"{APP}:asgi", "--port", str(port), "--no-access-log"
    )


def _traceparent(i: int) -> str:
    return f"00-{i + 1:032x}-{i + 1:016x}-01"


async def _abandon(port: int, i: int, client: httpx.AsyncClient) -> None:
    """Send /slow?i=..., wait until its view runs, and leave without an answer."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /slow?i={i}&handled=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()

    async def started() -> bool:
        answer = await client.get("/spans", params={"started": "1"})
        return str(i) in answer.json()["started"]

    await wait_until_async(started, 20)
    writer.close()
    await writer.wait_closed()


async def _load(port: int) -> dict[int, httpx.Response]:
    """The 200 requests, 16 at a time; the answers of those that get one."""
    limits = httpx.Limits(max_connections=16)
    url = f"http://127.0.0.1:{port}"
    answers: dict[int, httpx.Response] = {}
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=30 * UNIT
    ) as client:

        async def one(i: int) -> None:
            kind = KINDS[i % len(KINDS)]
            if kind == "slow":
                return await _abandon(port, i, client)
            headers = {"traceparent": _traceparent(i)} if i % 3 == 0 else {}
            answers[i] = await client.get(f"/{kind}", params={"i": i}, headers=headers)

        await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    return answers


def _server_spans(spans: list[dict]) -> dict[str, list[dict]]:
    by_i = collections.defaultdict(list)
    for span in spans:
        if span["kind"] == "SERVER":
            by_i[request_i(span)].append(span)
    return by_i


@pytest.fixture(params=["worker", "uvicorn"])
def observed(request):
    """The observed app on one server, reporting to an envelope sink; yields both."""
    for name in ("gunicorn", "uvicorn", "opentelemetry.sdk", "sentry_sdk"):
        require_module(name)
    port = free_port()
    with envelope_sink() as sink:
        env = {"AIOPYRAMID_TEST_SENTRY_DSN": sink.dsn}
        with running(_command(request.param, port), port, env=env) as server:
            yield server, sink


@pytest.mark.server
def test_spans_and_events_belong_to_their_own_request(observed):
    """Under 200 interleaved requests no span, tag or event crosses requests."""
    server, sink = observed
    answers = asyncio.run(_load(server.port))
    kinds = {i: KINDS[i % len(KINDS)] for i in range(REQUESTS)}
    # A coroutine request calls /echo: a second server span, in its trace.
    expected = REQUESTS + sum(kind == "coro" for kind in kinds.values())

    def spans() -> list[dict]:
        return httpx.get(f"{server.url}/spans", timeout=30 * UNIT).json()["spans"]

    def all_ended() -> bool:
        """every request's server span has ended"""
        return sum(span["kind"] == "SERVER" for span in spans()) >= expected

    wait_until(all_ended, 20)
    finished = spans()
    by_i = _server_spans(finished)
    assert span_mismatches(finished) == []
    for i, kind in kinds.items():
        mine = by_i[str(i)]
        assert len(mine) == (2 if kind == "coro" else 1), (i, kind, mine)
        assert len({span["trace"] for span in mine}) == 1
        status = mine[0]["attributes"].get("http.status_code")
        if i % 3 == 0 and kind != "slow":
            assert mine[0]["trace"] == _traceparent(i)[3:35]  # joined
        if kind == "coro":  # the outgoing call carried this request's trace
            assert answers[i].text.split("-")[1] == mine[0]["trace"]
        if kind == "fail":
            assert (status, mine[0]["status"]) == (500, "ERROR")
        elif kind == "slow":  # the client left: not a server error
            assert (status, mine[0]["status"]) == (499, "UNSET"), mine[0]
        else:
            assert answers[i].status_code == 200
            assert (status, mine[0]["status"]) == (200, "UNSET")
    assert "Failed to detach context" not in server.log()
    seen = httpx.get(f"{server.url}/spans", params={"started": "1"}).json()
    slow = sorted(str(i) for i, kind in kinds.items() if kind == "slow")
    assert sorted(seen["finished"]) == slow  # every finally ran
    # Neither their except Exception nor an exception view for Exception
    # (which their ?handled selects) saw a client's leaving.
    assert seen["caught"] == []

    def all_reported() -> bool:
        """Sentry got a transaction for every request"""
        return len(sink.of_type("transaction")) >= expected

    wait_until(all_reported, 20)
    transactions = sink.of_type("transaction")
    assert len(transactions) == expected
    events = sink.of_type("event")
    failed = sorted(str(i) for i, kind in kinds.items() if kind == "fail")
    # One event a failure, and none for a client's leaving.
    assert sorted(event["tags"]["i"] for event in events) == failed
    for event in events:
        i = event["tags"]["i"]
        assert f"i={i}" in event["request"]["query_string"]
        message = event["exception"]["values"][-1]["value"]
        assert message == f"failure of request {i}"
    statuses = collections.Counter(
        (
            event["tags"].get("i") and kinds[int(event["tags"]["i"])],
            event["contexts"]["trace"].get("status"),
        )
        for event in transactions
    )
    assert statuses[("slow", "cancelled")] == REQUESTS // len(KINDS)
    assert statuses[("fail", "internal_error")] == len(failed)
    assert not [key for key in statuses if key[0] == "slow" and key[1] != "cancelled"]


def test_the_checker_reports_a_swapped_parent():
    """span_mismatches names a span whose parent is another request's server span."""

    def span(name, kind, trace, span_id, parent, i, target=None):
        attributes = {"i": i} if target is None else {"http.target": target}
        return {
            "name": name,
            "kind": kind,
            "trace": trace,
            "id": span_id,
            "parent": parent,
            "attributes": attributes,
        }

    spans = [
        span("GET /a", "SERVER", "t1", "s1", None, None, "/a?i=1"),
        span("GET /b", "SERVER", "t2", "s2", None, None, "/b?i=2"),
        span("child", "INTERNAL", "t1", "c1", "s1", "1"),
        span("child", "INTERNAL", "t2", "c2", "s1", "2"),  # swapped parent
        span("orphan", "INTERNAL", "t2", "c3", "zz", "2"),
    ]
    assert span_mismatches(spans) == [
        "child (i=2): parent in another trace",
        "orphan (i=2): no server span above it",
    ]
    spans[3]["trace"] = "t1"  # same trace, wrong request
    assert span_mismatches(spans)[0] == "child (i=2): under request 1's span"


def test_a_coroutine_waited_for_from_a_pool_thread_is_traced_by_its_name(monkeypatch):
    """The asyncio instrumentation sees the user's coroutine, not the bridge's job."""
    instrumentation = import_required("opentelemetry.instrumentation.asyncio")
    sdk = import_required("opentelemetry.sdk.trace")
    memory = import_required("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    export = import_required("opentelemetry.sdk.trace.export")
    from aiopyramid.helpers import synchronize, use_executor

    monkeypatch.setenv("OTEL_PYTHON_ASYNCIO_COROUTINE_NAMES_TO_TRACE", "fetch_named")
    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    instrumentor = instrumentation.AsyncioInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    @synchronize
    async def fetch_named() -> str:
        await asyncio.sleep(0)
        return "done"

    try:
        assert asyncio.run(use_executor(fetch_named)()) == "done"
    finally:
        instrumentor.uninstrument()
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == ["asyncio coro-fetch_named"]


def test_including_the_hook_without_opentelemetrys_tween_says_what_to_do():
    """config.include("aiopyramid.observability") alone fails, naming the fix."""
    from pyramid.config import Configurator
    from pyramid.exceptions import ConfigurationError

    config = Configurator()
    config.include("aiopyramid.observability")
    with pytest.raises(ConfigurationError, match=r"instrument_config\(config\)"):
        config.commit()


def test_an_explicit_tween_list_gets_the_wrapped_tween():
    """With pyramid.tweens set, OpenTelemetry's tween in the list is the one wrapped."""
    import_required("opentelemetry.instrumentation.pyramid")
    from pyramid.config import Configurator
    from pyramid.interfaces import ITweens

    from aiopyramid.observability import OPENTELEMETRY_TWEEN

    tweens = f"{OPENTELEMETRY_TWEEN}\npyramid.tweens.excview_tween_factory"
    config = Configurator(settings={"pyramid.tweens": tweens})
    config.include("aiopyramid.observability")
    config.commit()
    ((name, factory), _) = config.registry.getUtility(ITweens).explicit
    assert name == OPENTELEMETRY_TWEEN
    assert factory.__name__ == "disconnect_aware_factory"
