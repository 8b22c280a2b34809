"""Which handshake origins count as the request's own host."""

from __future__ import annotations

import pytest

from aiopyramid.websocket.config._base import _same_host


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://example.com", "example.com", True),
        ("http://example.com", "example.com:80", True),
        ("https://example.com", "example.com", True),
        ("https://example.com", "example.com:443", True),
        ("https://example.com:8443", "example.com:8443", True),
        ("HTTP://Example.COM", "EXAMPLE.com", True),
        ("http://[::1]:8080", "[::1]:8080", True),
        ("http://[::1]", "[::1]", True),
        ("http://example.com", "example.com:8080", False),
        ("https://example.com", "example.com:80", False),
        ("http://example.com.evil", "example.com", False),
        ("http://evil.example", "example.com", False),
        ("null", "example.com", False),
        ("file://", "example.com", False),
        ("chrome-extension://abc", "abc", False),
        ("http://example.com:99999", "example.com:99999", False),
        ("http://", "", False),
    ],
)
def test_same_host(origin, host, same):
    """Scheme default ports count, case does not, anything odd is not the host."""
    assert _same_host(origin, host) is same


def handshake_request(origin: str | None, settings: dict | None = None):
    """A websocket handshake request, as Pyramid sees it, from ``origin``."""
    from pyramid import testing

    headers = {"Host": "app.example", "Sec-WebSocket-Key": "x" * 24}
    if origin is not None:
        headers["Origin"] = origin
    request = testing.DummyRequest(headers=headers)
    request.environ["HTTP_SEC_WEBSOCKET_KEY"] = "x" * 24
    request.host = "app.example"
    request.registry.settings = settings or {}
    return request


def test_uwsgi_mapper_refuses_other_origins_before_the_handshake():
    """UWSGIWebsocketMapper answers 403 to another site's page, uWSGI or not."""
    from aiopyramid.websocket.config import UWSGIWebsocketMapper

    def view(ws):
        raise AssertionError("never reached")

    mapped = UWSGIWebsocketMapper()(view)
    for origin in ("https://evil.example", "null"):
        assert mapped(None, handshake_request(origin)).status_code == 403
    friendly = {"aiopyramid.websocket.allowed_origins": "https://evil.example"}
    option = UWSGIWebsocketMapper.options(allowed_origins=["null"])
    assert option.allowed_origins == ("null",)
    # Allowed ones go on to uWSGI's handshake, which needs uWSGI itself.
    # (Built one at a time: DummyRequests share one registry and its settings.)
    for origin, settings in (
        ("https://evil.example", friendly),
        ("http://app.example", {}),
        (None, {}),
    ):
        with pytest.raises(ImportError, match=r"through uWSGI's own API"):
            mapped(None, handshake_request(origin, settings))
