"""What the websocket mappers of every server share."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from pyramid.httpexceptions import HTTPBadRequest, HTTPForbidden
from pyramid.interfaces import IViewMapper, IViewMapperFactory
from pyramid.settings import aslist
from zope.interface import implementer, provider

from ..._unwrap import allow_yield_from
from ..interface import Websocket
from ._options import MapperOptions

#: Each spelling of the one text-as-bytes option, with its opposite.
_TWINS = {"use_bytes": "use_str", "use_str": "use_bytes"}


class _MapperType(type):
    """The mappers' metaclass: one spelling assigned sets the other too.

    ``UWSGIWebsocketMapper.use_str = False`` after import (as the original
    library's users wrote) must mean ``use_bytes = True`` for whichever
    attribute a mapper reads: class bodies are kept in step by
    ``__init_subclass__``, later assignments to a class here, and to an
    instance by :meth:`WebsocketMapperBase.__setattr__`.
    """

    def __setattr__(cls, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        twin = _TWINS.get(name)
        if twin is not None:
            super().__setattr__(twin, not value)


@implementer(IViewMapper)
@provider(IViewMapperFactory)
class WebsocketMapperBase(metaclass=_MapperType):
    """Options, subprotocol choice and view lookup common to both mappers.

    Options are attributes: set them as class attributes of a subclass, or
    for one view with :meth:`options` (:meth:`with_options`), which sets
    them on the mapper made for that view without making a class.
    """

    #: Subprotocols the view speaks, in order of preference.
    subprotocols: Sequence[str] = ()
    #: Origins (``scheme://host[:port]``, ``"null"``, or ``"*"`` for any) whose
    #: pages may open this view's websockets besides the request's own host;
    #: ``None``: the ``aiopyramid.websocket.allowed_origins`` setting.
    allowed_origins: Sequence[str] | None = None
    #: Hand text frames to the view as UTF-8 ``bytes`` (binary frames are
    #: ``bytes`` anyway).  The opposite spelling of :attr:`use_str`: a class
    #: that sets one gets the other set to its opposite.
    use_bytes: bool = False
    #: Hand text frames to the view as ``str``: the opposite of
    #: :attr:`use_bytes` (the uWSGI mapper's original spelling).
    use_str: bool = True

    def __init__(self, **kw: Any) -> None:
        self.attr: str | None = kw.get("attr")

    def __setattr__(self, name: str, value: Any) -> None:
        """Set an attribute; either spelling of the bytes option sets both."""
        object.__setattr__(self, name, value)
        twin = _TWINS.get(name)
        if twin is not None:
            object.__setattr__(self, twin, not value)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        own = vars(cls)
        if "use_bytes" in own and "use_str" in own:
            if bool(cls.use_bytes) == bool(cls.use_str):
                raise TypeError(
                    f"{cls.__name__} sets use_bytes = {cls.use_bytes!r} and "
                    f"use_str = {cls.use_str!r}: they are opposite spellings of "
                    "one option. Set only one of them."
                )
        elif "use_bytes" in own:
            cls.use_str = not cls.use_bytes
        elif "use_str" in own:
            cls.use_bytes = not cls.use_str

    @classmethod
    def with_options(cls, **options: Any) -> MapperOptions:
        """This mapper with ``options`` for one view (``None``: unchanged).

        Returns a mapper factory for ``view_config(mapper=...)`` (or a class
        view's ``__view_mapper__``); no class is made.  The options are
        ``use_bytes`` (or its opposite, ``use_str``), ``subprotocols`` and
        ``allowed_origins``; another name raises :class:`TypeError`.
        """
        return MapperOptions(cls, options)

    @classmethod
    def options(
        cls,
        *,
        use_bytes: bool | None = None,
        use_str: bool | None = None,
        subprotocols: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
    ) -> MapperOptions:
        """This mapper with these options, for ``view_config(mapper=...)``.

        The same as :meth:`with_options`, with the options spelt out.
        """
        return cls.with_options(
            use_bytes=use_bytes,
            use_str=use_str,
            subprotocols=subprotocols,
            allowed_origins=allowed_origins,
        )

    def __call__(self, view: Any) -> Callable[[Any, Any], Any]:
        """Map ``view`` into a ``(context, request)`` callable (per server)."""
        raise NotImplementedError

    def launch_websocket_view(self, view: Any) -> Callable[[Any, Any], Any]:
        """The original library's name for mapping a websocket view.

        Returns the same ``(context, request)`` callable as calling the
        mapper with ``view`` does.
        """
        return self(view)

    def choose_subprotocol(self, offered: Sequence[str]) -> str | None:
        """The first of :attr:`subprotocols` that the client offered, if any."""
        for name in self.subprotocols:
            if name in offered:
                return name
        return None

    def refuse_origin(self, request: Any) -> HTTPForbidden | None:
        """``403`` for a browser handshake from a page of another site, else None.

        Browsers send cookies with a websocket handshake whatever page opens
        it, and websockets have no same-origin policy: without this check
        any site a user visits could talk to this view as that user
        (cross-site websocket hijacking, RFC 6455 section 10.2).  Browsers
        always send ``Origin``; a handshake without one comes from a
        program, which has no victim's cookies to borrow, and is let in.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        allowed = self.allowed_origins
        if allowed is None:
            settings = request.registry.settings or {}
            allowed = aslist(settings.get("aiopyramid.websocket.allowed_origins", ""))
        if "*" in allowed or origin in allowed or _same_host(origin, request.host):
            return None
        return HTTPForbidden(
            f"Websocket connections from pages of {origin} are not allowed. List "
            "that origin in aiopyramid.websocket.allowed_origins (or the "
            "mapper's allowed_origins option) to allow them."
        )

    def view_target(
        self, view: Any
    ) -> Callable[[Any, Any], Callable[[Websocket], Any]]:
        """``(context, request) -> callable(ws)`` for a function or class view."""
        attr = self.attr
        allow_yield_from(view, attr)
        if inspect.isclass(view):
            factory: Any = view

            def from_class(context: Any, request: Any) -> Any:
                instance = factory(context, request)
                return getattr(instance, attr) if attr else instance

            return from_class
        target = getattr(view, attr) if attr else view
        return lambda context, request: target


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _same_host(origin: str, host: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) is the ``Host`` header's host."""
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.hostname:
        return False  # "null", or not a web page's origin
    host = host.lower()
    if host.endswith("]") or ":" not in host:  # no port ("[::1]" has colons)
        name, port = host, default
    else:
        name, _, port = host.rpartition(":")
    return name.strip("[]") == parts.hostname and port == str(origin_port or default)


def not_a_websocket() -> HTTPBadRequest:
    """The answer to a plain request for a websocket view."""
    return HTTPBadRequest(
        "This URL serves websocket connections only: connect with a websocket "
        "client (a GET with Upgrade: websocket)."
    )
