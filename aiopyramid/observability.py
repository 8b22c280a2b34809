"""OpenTelemetry's Pyramid instrumentation, told a client's leaving from a failure.

When a client leaves mid-request, the server adapter cancels the request and
the request's code gets :class:`~aiopyramid.exceptions.ClientDisconnected`
(a cancellation) where it waits.  OpenTelemetry's Pyramid tween takes any
exception but Pyramid's HTTP exceptions for a server error: it closes the
span with ``http.status_code = 500`` and status ERROR.  After
``config.include("aiopyramid.observability")``, that tween sees a
``499 Client Closed Request`` response instead (a 4xx: the server span's
status stays UNSET), and the cancellation goes on unwinding above it::

    from opentelemetry.instrumentation.pyramid import PyramidInstrumentor

    PyramidInstrumentor().instrument_config(config)
    config.include("aiopyramid.observability")

Only OpenTelemetry's own tween sees the response: every tween below and
above it (``pyramid_tm`` aborts its transaction) and every ``except`` and
``finally`` of the application still see the cancellation.  Sentry has its
own hook, :class:`aiopyramid.sentry.AiopyramidIntegration`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ITweens
from pyramid.request import Request
from pyramid.response import Response

from .exceptions import ClientDisconnected

__all__ = ["OPENTELEMETRY_TWEEN", "includeme"]

#: The dotted name under which OpenTelemetry's Pyramid instrumentation adds
#: its tween.
OPENTELEMETRY_TWEEN = "opentelemetry.instrumentation.pyramid.trace_tween_factory"
#: Where the disconnection waits, in the environ, while the tween closes its span.
_LEFT_KEY = "aiopyramid.client_disconnected"
#: What OpenTelemetry's tween is shown for a request whose client left.
_STATUS = "499 Client Closed Request"

TweenFactory = Callable[[Callable[[Request], Any], Any], Callable[[Request], Any]]


def includeme(config: Configurator) -> None:
    """Wrap OpenTelemetry's Pyramid tween so that a client's leaving is a 499.

    The wrapping happens when the configuration is committed, after every
    ``add_tween`` (the instrumentation may be included before or after this),
    so it keeps the tween's place in the chain, implicit or explicit.
    """
    # Later than every action of the default order: add_tween's included.
    config.action(("aiopyramid.observability",), lambda: _wrap(config), order=1)


def _wrap(config: Configurator) -> None:
    tweens = config.registry.queryUtility(ITweens)
    intr = config.introspector.get("tweens", ("tween", OPENTELEMETRY_TWEEN, False))
    explicit = [name for name, _ in getattr(tweens, "explicit", ())]
    if tweens is None or (intr is None and OPENTELEMETRY_TWEEN not in explicit):
        raise ConfigurationError(
            'config.include("aiopyramid.observability") found no OpenTelemetry '
            f"tween ({OPENTELEMETRY_TWEEN}) to wrap. Instrument the "
            "configurator too: `PyramidInstrumentor().instrument_config(config)` "
            "(from opentelemetry.instrumentation.pyramid), or call "
            "`PyramidInstrumentor().instrument()` before creating it."
        )
    if intr is not None:  # re-adding a name replaces it, in the same place
        tweens.add_implicit(
            OPENTELEMETRY_TWEEN,
            _disconnects_as_499(intr["factory"]),
            under=intr["under"],
            over=intr["over"],
        )
    tweens.explicit[:] = [
        (name, _disconnects_as_499(factory) if name == OPENTELEMETRY_TWEEN else factory)
        for name, factory in tweens.explicit
    ]


def _disconnects_as_499(factory: TweenFactory) -> TweenFactory:
    """``factory``'s tween, shown a 499 response for a client's leaving.

    The tween below it turns :class:`ClientDisconnected` into the response
    and keeps the exception; the one above raises it again once the wrapped
    tween has returned, so nothing else is told anything new.
    """

    def disconnect_aware_factory(handler: Any, registry: Any) -> Any:
        def below(request: Request) -> Any:
            try:
                return handler(request)
            except ClientDisconnected as left:
                request.environ[_LEFT_KEY] = left
                return Response(status=_STATUS)

        wrapped = factory(below, registry)

        def above(request: Request) -> Any:
            response = wrapped(request)
            left = request.environ.pop(_LEFT_KEY, None)
            if left is not None:
                raise left  # the same cancellation, on its way up again
            return response

        return above

    return disconnect_aware_factory
