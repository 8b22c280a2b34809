"""Every public module exports exactly the names it documents."""

from __future__ import annotations

import importlib

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
    ],
    "aiopyramid.exceptions": ["ScopeError"],
    "aiopyramid.config": [
        "AsyncioMapperBase",
        "CoroutineOrExecutorMapper",
        "CoroutineMapper",
        "ExecutorMapper",
    ],
    "aiopyramid.traversal": ["AsyncioTraverser"],
    "aiopyramid.tweens": ["coroutine_logger_tween_factory"],
    "aiopyramid.auth": [
        "authn_policy_factory",
        "coroutine_callback_authentication_policy_factory",
        "CoroutineAuthenticationPolicyProxy",
        "CoroutineSecurityPolicyProxy",
    ],
    "aiopyramid.testing": ["SynchronousApp"],
    "aiopyramid.websocket.exceptions": ["WebsocketClosed"],
    "aiopyramid.websocket.helpers": ["ignore_websocket_closed"],
    "aiopyramid.websocket.view": ["WebsocketConnectionView"],
    "aiopyramid.websocket.config": ["WebsocketMapper", "UWSGIWebsocketMapper"],
    "aiopyramid.websocket.config.gunicorn": ["WebsocketMapper"],
    "aiopyramid.websocket.config.uwsgi": ["UWSGIWebsocket", "UWSGIWebsocketMapper"],
    "aiopyramid.asgi": ["make_asgi_app", "ASGIBridge", "log_access"],
    "aiopyramid.gunicorn.worker": ["AsyncGunicornWorker"],
    "aiopyramid.pcreate": ["main"],
}


@pytest.mark.parametrize("module_name", PUBLIC)
def test_public_names_are_exported_and_documented(module_name):
    """The promised names are in __all__, importable, and have docstrings."""
    module = importlib.import_module(module_name)
    assert module.__doc__
    for name in PUBLIC[module_name]:
        assert name in module.__all__
        assert getattr(module, name).__doc__, f"{module_name}.{name} lacks a docstring"
    for name in module.__all__:
        assert hasattr(module, name)
