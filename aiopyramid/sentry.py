"""A Sentry integration for aiopyramid: disconnects and failures, told once.

Add it beside Sentry's own Pyramid integration::

    import sentry_sdk
    from sentry_sdk.integrations.pyramid import PyramidIntegration

    from aiopyramid.sentry import AiopyramidIntegration

    sentry_sdk.init(
        dsn=...,
        integrations=[PyramidIntegration(), AiopyramidIntegration()],
    )

It does two things:

* a request whose client left (the request's code got
  :class:`~aiopyramid.exceptions.ClientDisconnected`) is no error: the
  exception's event is dropped, and the request's transaction has status
  ``cancelled`` and HTTP status 499 rather than ``internal_error``;
* a failing request is reported once: Sentry's Pyramid integration already
  captures the exception inside the request's scope, with the request's
  data, so the ERROR record aiopyramid logs for it afterwards (logger
  ``aiopyramid.failures``) is left out of Sentry's logging integration
  (it still goes to your log handlers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.scope import add_global_event_processor

from ._failures import log as failure_log
from .exceptions import ClientDisconnected

if TYPE_CHECKING:
    from sentry_sdk._types import Event

__all__ = ["AiopyramidIntegration"]

#: The HTTP status the access log, and now Sentry, give a client's leaving.
CLIENT_CLOSED = 499


class AiopyramidIntegration(Integration):
    """Sentry integration: client disconnects are not errors; one event a failure."""

    identifier = "aiopyramid"

    @staticmethod
    def setup_once() -> None:
        """Install the event processor and silence the duplicate failure log."""
        ignore_logger(failure_log.name)
        add_global_event_processor(_process)


def _process(event: Event, hint: dict[str, Any]) -> Event | None:
    if sentry_sdk.get_client().get_integration(AiopyramidIntegration) is None:
        return event
    exc_info = hint.get("exc_info")
    if exc_info is not None and isinstance(exc_info[1], ClientDisconnected):
        # Captured by Sentry's WSGI middleware inside the request's
        # transaction, which is still open: mark it, for its own event.
        transaction = sentry_sdk.get_current_scope().transaction
        if transaction is not None:
            transaction.set_http_status(CLIENT_CLOSED)
        return None
    if event.get("type") == "transaction":
        trace: dict[str, Any] = event.get("contexts", {}).get("trace", {})
        tags = event.get("tags") or {}
        # The transaction's exit, which the cancellation passed through,
        # set internal_error over what the mark above said.
        if str(tags.get("http.status_code")) == str(CLIENT_CLOSED):
            trace["status"] = "cancelled"
    return event
