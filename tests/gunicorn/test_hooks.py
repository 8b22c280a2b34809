"""The private gunicorn names ``AsyncGunicornWorker`` relies on, checked one by one.

gunicorn 27 has no public hook for a request-head deadline, for replacing
its websocket implementation, or for choosing the worker's connection
protocol (see ``aiopyramid/gunicorn/_protocol.py``).  A gunicorn upgrade
that renames or reshapes one of these fails here, by name, before anything
subtler breaks.  The worker's server tests (``test_head_timeout.py``,
``test_websocket_frames.py``) check that each is still *called*.
"""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

import pytest

from tests.harness.servers import import_required

gunicorn_protocol = import_required("gunicorn.asgi.protocol")
import_required("websockets")

from gunicorn.config import Config  # noqa: E402
from gunicorn.workers import gasgi  # noqa: E402

from aiopyramid.gunicorn._protocol import Protocol  # noqa: E402

ASGIProtocol = gunicorn_protocol.ASGIProtocol


def parameters(function: Any) -> list[str]:
    """The names of ``function``'s parameters."""
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    ("name", "expected", "is_coroutine"),
    [
        ("_handle_websocket", ["self", "request", "sockname", "peername"], True),
        ("_build_websocket_scope", ["self", "request", "sockname", "peername"], False),
        ("_on_headers_complete", ["self"], False),
        ("_keepalive_timeout", ["self"], False),
        ("_close_transport", ["self"], False),
        ("_send_error_response", ["self", "status", "message", "extra_headers"], False),
        # The direct HTTP/1 path (_http1.py) and the keep-alive deadline:
        ("_serve_http_request", ["self", "request", "sockname", "peername"], True),
        ("_arm_keepalive_timer", ["self"], False),
        ("_cancel_keepalive_timer", ["self"], False),
        ("_will_close", ["self", "request", "response_requires_close"], False),
        ("_safe_write", ["self", "data"], False),
        # HTTP/2 pacing (_http2.py) and the transport's flow control:
        ("_build_http2_scope", ["self", "request", "sockname", "peername"], False),
        ("pause_writing", ["self"], False),
        ("resume_writing", ["self"], False),
    ],
)
def test_hooked_methods_have_the_expected_shape(
    name: str, expected: list[str], is_coroutine: bool
) -> None:
    """Each ASGIProtocol method we override or call exists with our signature."""
    method = getattr(ASGIProtocol, name, None)
    assert method is not None, f"gunicorn's ASGIProtocol has no {name} any more"
    assert parameters(method) == expected
    assert inspect.iscoroutinefunction(method) is is_coroutine


def test_the_direct_path_reads_what_it_needs_of_gunicorn() -> None:
    """The connection loop still calls _serve_http_request and arms keep-alive."""
    loop_source = inspect.getsource(ASGIProtocol._handle_connection)
    assert "self._serve_http_request(" in loop_source
    assert "self._arm_keepalive_timer()" in loop_source
    assert isinstance(gunicorn_protocol._CACHED_SERVER_HEADER, bytes)
    assert gunicorn_protocol._get_cached_date_header().startswith(b"Date: ")
    protocol = Protocol(fake_worker())
    for name in (
        "_keepalive_handle",
        "_keepalive",
        "_pre_request",
        "_post_request",
        "_root_path",
        "_task",
        "_closed",
    ):
        assert hasattr(protocol, name), name


def test_gunicorn_notifies_once_its_servers_listen() -> None:
    """The worker's backlog fix runs in notify(), which _serve calls after
    create_server, whose asyncio default backlog (100) replaces gunicorn's."""
    serve = inspect.getsource(gasgi.ASGIWorker._serve)
    assert serve.index("create_server(") < serve.index("self.notify()")
    assert "backlog" not in serve  # still asyncio's default: the fix is needed
    default = inspect.signature(asyncio.AbstractEventLoop.create_server)
    assert default.parameters["backlog"].default == 100
    assert "self.servers.append(server)" in serve


def test_connections_use_gunicorns_c_parser() -> None:
    """gunicorn_h1c parses our connections (gunicorn asks the subclass, then
    reads ASGIProtocol: _protocol.py puts the answer where it is read)."""
    protocol = Protocol(fake_worker())
    protocol._setup_callback_parser()
    assert type(protocol._callback_parser).__module__.startswith("gunicorn_h1c")


def test_the_worker_makes_protocols_through_the_module_name() -> None:
    """gunicorn's ASGIWorker makes each connection's protocol as ASGIProtocol(self)."""
    assert gasgi.ASGIProtocol is ASGIProtocol or issubclass(
        gasgi.ASGIProtocol, ASGIProtocol
    )
    assert "ASGIProtocol(self)" in inspect.getsource(gasgi.ASGIWorker._serve)


def fake_worker(loop: Any = None) -> Any:
    """Just enough of a worker for ASGIProtocol's constructor."""
    return SimpleNamespace(
        cfg=Config(),
        log=SimpleNamespace(error_log=None, debug=lambda *a: None),
        asgi=None,
        nr_conns=1,
        loop=loop,
        head_timeout=None,
    )


class Recorder:
    """Stands in for our websocket: records what the protocol hands it."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def feed_data(self, data: bytes) -> None:
        self.calls.append(data)

    def feed_eof(self) -> None:
        self.calls.append("eof")


def test_bytes_and_the_end_go_to_the_websocket_attribute() -> None:
    """data_received and connection_lost hand ``_websocket`` bytes and the end."""

    async def main() -> list[Any]:
        protocol = Protocol(fake_worker())
        for name in (
            "_websocket",
            "_callback_parser",
            "_flow_control",
            "_body_receiver",
        ):
            assert hasattr(protocol, name), name
        websocket = Recorder()
        protocol._websocket = websocket
        protocol.data_received(b"frame")
        protocol.connection_lost(None)
        return websocket.calls

    assert asyncio.run(main()) == [b"frame", "eof"]


def test_a_lost_connection_wakes_its_task_to_end() -> None:
    """connection_lost sets the event gunicorn's connection loop waits on."""

    async def main() -> bool:
        protocol = Protocol(fake_worker())
        protocol._request_ready = asyncio.Event()
        protocol.connection_lost(None)
        return protocol._request_ready.is_set() and protocol._closed

    assert asyncio.run(main())


def test_http2_flow_control_reaches_what_the_pacing_reads() -> None:
    """gunicorn forwards an HTTP/2 transport's pause and resume through
    ``_h2_writer_protocol``, gives each scope an extensions dictionary, and
    keeps ``_conn_lost_handled`` and ``FlowControl.resume_writing``."""
    pause = inspect.getsource(ASGIProtocol.pause_writing)
    assert "self._h2_writer_protocol" in pause
    scope = inspect.getsource(ASGIProtocol._build_http2_scope)
    assert 'scope["extensions"] = extensions' in scope
    assert callable(gunicorn_protocol.FlowControl.resume_writing)
    assert "_conn_lost_handled" in inspect.getsource(ASGIProtocol.connection_lost)

    async def main() -> tuple[bool, bool]:
        protocol = Protocol(fake_worker(loop=asyncio.get_running_loop()))
        protocol._h2_writer_protocol = SimpleNamespace(
            pause_writing=lambda: None, resume_writing=lambda: None
        )
        protocol.pause_writing()
        waiter = protocol.stream_ready()
        protocol.resume_writing()
        return waiter is not None and waiter.done(), protocol.stream_ready() is None

    assert asyncio.run(main()) == (True, True)
