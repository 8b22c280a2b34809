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
