"""Every public module exports exactly the names it documents."""

from __future__ import annotations

import importlib
import inspect
import typing

import pytest

PUBLIC = {
    "aiopyramid": ["includeme"],
    "aiopyramid.helpers": [
        "synchronize",
        "spawn_greenlet",
        "run_in_greenlet",
        "is_generator",
        "use_executor",
        "spawn_greenlet_on_scope_error",
        "SCOPE_ERROR_MESSAGE",
    ],
    "aiopyramid.exceptions": ["AiopyramidError", "ClientDisconnected", "ScopeError"],
    "aiopyramid.observability": ["OPENTELEMETRY_TWEEN", "includeme"],
    "aiopyramid.sentry": ["AiopyramidIntegration"],
    "aiopyramid.config": [
        "AsyncioMapperBase",
        "CoroutineOrExecutorMapper",
        "CoroutineOrGreenletMapper",
        "CoroutineMapper",
        "ExecutorMapper",
        "IExecutor",
        "is_coroutine_view",
    ],
    "aiopyramid.traversal": ["AsyncioTraverser", "traverse", "SLASH"],
    "aiopyramid.tweens": ["coroutine_logger_tween_factory"],
    "aiopyramid.auth": [
        "authn_policy_factory",
        "coroutine_callback_authentication_policy_factory",
        "CoroutineAuthenticationPolicyProxy",
        "CoroutineSecurityPolicyProxy",
    ],
    "aiopyramid.testing": ["SynchronousApp"],
    "aiopyramid.websocket.exceptions": ["WebsocketClosed"],
    "aiopyramid.websocket.interface": ["Websocket"],
    "aiopyramid.websocket.helpers": ["ignore_websocket_closed"],
    "aiopyramid.websocket.view": ["WebsocketConnectionView"],
    "aiopyramid.websocket.config": ["WebsocketMapper", "UWSGIWebsocketMapper"],
    "aiopyramid.websocket.config.gunicorn": ["WebsocketMapper", "ASGIWebsocket"],
    "aiopyramid.websocket.config.uwsgi": ["UWSGIWebsocket", "UWSGIWebsocketMapper"],
    "aiopyramid.asgi": [
        "make_asgi_app",
        "ASGIBridge",
        "AccessLogger",
        "Limits",
        "log_access",
        "DEFAULT_BODY_TIMEOUT",
        "DEFAULT_LIMITS",
        "DEFAULT_MAX_BODY_SIZE",
        "DEFAULT_MAX_WEBSOCKETS",
        "DEFAULT_SEND_TIMEOUT",
    ],
    "aiopyramid.rsgi": ["make_rsgi_app", "RSGIApp"],
    "aiopyramid.gunicorn.worker": ["AsyncGunicornWorker"],
    "aiopyramid.pcreate": ["main", "Scaffold", "find_scaffolds"],
    "aiopyramid.broadcast": [
        "Broadcast",
        "BroadcastError",
        "BroadcastUnavailable",
        "IBroadcast",
        "InvalidChannel",
        "MessageTooLarge",
        "Relay",
        "SlowSubscriber",
        "Subscription",
        "get_broadcast",
    ],
}


@pytest.mark.parametrize("module_name", PUBLIC)
def test_public_names_are_exported_and_documented(module_name):
    """__all__ is exactly the promised names, each importable and documented."""
    module = importlib.import_module(module_name)
    assert module.__doc__
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    for name in PUBLIC[module_name]:
        value = getattr(module, name)
        is_alias = typing.get_origin(value) is not None  # e.g. Callable[...]
        if inspect.isfunction(value) or (inspect.isclass(value) and not is_alias):
            assert value.__doc__, f"{module_name}.{name} lacks a docstring"
