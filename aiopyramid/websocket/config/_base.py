"""What the websocket mappers of every server share."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from pyramid.httpexceptions import HTTPBadRequest
from pyramid.interfaces import IViewMapper, IViewMapperFactory
from zope.interface import implementer, provider

from ..._bridge import allow_yield_from

M = TypeVar("M", bound="WebsocketMapperBase")


@implementer(IViewMapper)
@provider(IViewMapperFactory)
class WebsocketMapperBase:
    """Options, subprotocol choice and view lookup common to both mappers."""

    #: Subprotocols the view speaks, in order of preference.
    subprotocols: ClassVar[Sequence[str]] = ()

    def __init__(self, **kw: Any) -> None:
        self.attr: str | None = kw.get("attr")

    @classmethod
    def with_options(cls: type[M], **values: Any) -> type[M]:
        """A subclass whose class attributes are ``values`` (``None``: unchanged)."""
        namespace: dict[str, Any] = {}
        for name, value in values.items():
            if value is not None:
                namespace[name] = tuple(value) if name == "subprotocols" else value
        return type(cls.__name__, (cls,), namespace)

    def choose_subprotocol(self, offered: Sequence[str]) -> str | None:
        """The first of :attr:`subprotocols` that the client offered, if any."""
        for name in self.subprotocols:
            if name in offered:
                return name
        return None

    def view_target(self, view: Any) -> Callable[[Any, Any], Any]:
        """``(context, request) -> callable(ws)`` for a function or class view."""
        attr = self.attr
        if inspect.isclass(view):
            allow_yield_from(getattr(view, attr or "__call__", None))
            factory: Any = view

            def from_class(context: Any, request: Any) -> Any:
                instance = factory(context, request)
                return getattr(instance, attr) if attr else instance

            return from_class
        target = getattr(view, attr) if attr else view
        allow_yield_from(target)
        return lambda context, request: target


def not_a_websocket() -> HTTPBadRequest:
    """The answer to a plain request for a websocket view."""
    return HTTPBadRequest(
        "This URL serves websocket connections only: connect with a websocket "
        "client (a GET with Upgrade: websocket)."
    )
