"""ignore_websocket_closed, for applications written for earlier versions."""

from __future__ import annotations

from typing import Any

import pytest

from aiopyramid.websocket.exceptions import WebsocketClosed
from aiopyramid.websocket.helpers import ignore_websocket_closed


def closing_app(cause: BaseException | None) -> Any:
    """A WSGI app that ends with WebsocketClosed, caused by ``cause``."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        raise WebsocketClosed("closed") from cause

    return app


def test_bare_websocket_closed_is_an_empty_response() -> None:
    """A WebsocketClosed without a cause ends the request with no body."""
    assert ignore_websocket_closed(closing_app(None))({}, print) == []


def test_websocket_closed_with_a_cause_is_raised_again() -> None:
    """A WebsocketClosed caused by a failure goes on to the server's log."""
    with pytest.raises(WebsocketClosed) as raised:
        ignore_websocket_closed(closing_app(ValueError("view failed")))({}, print)
    assert isinstance(raised.value.__cause__, ValueError)


def test_other_responses_pass_through() -> None:
    """The wrapped application's own answer is returned unchanged."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return [b"hello"]

    assert ignore_websocket_closed(app)({}, print) == [b"hello"]
