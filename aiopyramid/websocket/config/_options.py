"""Per-view options of the websocket mappers, without a class per view.

``WebsocketMapper.options(use_bytes=True)`` (or ``.with_options(...)``)
returns a :class:`MapperOptions`: a view mapper factory, as
``view_config(mapper=...)`` expects, that makes the mapper and sets the
options on that instance.  Class attributes of a subclass set them for
every view it maps, as before; these options win over them.

``use_bytes`` (the ASGI mapper's name) and ``use_str`` (the uWSGI mapper's)
are opposite spellings of one option, accepted by both mappers: text frames
reach the view as UTF-8 ``bytes`` when ``use_bytes`` is true, which is when
``use_str`` is false.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyramid.interfaces import IViewMapperFactory
from zope.interface import implementer

#: The options every websocket mapper takes.
OPTIONS = ("use_bytes", "use_str", "subprotocols", "allowed_origins")
_SEQUENCES = ("subprotocols", "allowed_origins")


def clean_options(mapper: type[Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``options`` for ``mapper``; ``None`` values mean "unchanged".

    Sequences become tuples; ``use_bytes`` and ``use_str`` are both set from
    whichever is given; the names come in the order of :data:`OPTIONS`.
    Raises :class:`TypeError` for an unknown name and :class:`ValueError`
    when both spellings are given and disagree.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"{mapper.__name__} has no option {', '.join(map(repr, unknown))}; "
            f"its options are {', '.join(OPTIONS)}."
        )
    cleaned: dict[str, Any] = {}
    for name, value in options.items():
        if value is not None:
            cleaned[name] = tuple(value) if name in _SEQUENCES else value
    use_bytes, use_str = cleaned.get("use_bytes"), cleaned.get("use_str")
    if (
        use_bytes is not None
        and use_str is not None
        and bool(use_bytes) == bool(use_str)
    ):
        raise ValueError(
            f"use_bytes={use_bytes!r} and use_str={use_str!r} disagree: they are "
            "opposite spellings of one option (text frames as bytes, or as str). "
            "Give only one of them."
        )
    if use_bytes is not None:
        cleaned["use_bytes"], cleaned["use_str"] = bool(use_bytes), not use_bytes
    elif use_str is not None:
        cleaned["use_bytes"], cleaned["use_str"] = not use_str, bool(use_str)
    return {name: cleaned[name] for name in OPTIONS if name in cleaned}


@implementer(IViewMapperFactory)
class MapperOptions:
    """A websocket mapper class with options, for ``view_config(mapper=...)``.

    Pyramid calls it as it would call the mapper class; it returns the
    mapper with :attr:`values` set on it.  Reading an attribute gives the
    option if set, else the mapper class's own (``.use_bytes``,
    ``.subprotocols``...), as on the subclasses earlier versions made, and
    :meth:`options` (or :meth:`with_options`) adds more.
    """

    __slots__ = ("mapper", "values")

    def __init__(self, mapper: type[Any], values: Mapping[str, Any]) -> None:
        #: The mapper class.
        self.mapper = mapper
        #: The options set on each mapper made (checked, ``None`` left out).
        self.values: Mapping[str, Any] = clean_options(mapper, values)

    def __call__(self, **kw: Any) -> Any:
        """Make the mapper for one view (``kw``: the view's settings)."""
        mapper = self.mapper(**kw)
        for name, value in self.values.items():
            setattr(mapper, name, value)
        return mapper

    def with_options(self, **options: Any) -> MapperOptions:
        """These options updated with ``options`` (``None``: unchanged)."""
        return MapperOptions(self.mapper, {**self.values, **options})

    options = with_options

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in MapperOptions.__slots__:
            raise AttributeError(name)
        values = self.values
        if name in values:
            return values[name]
        return getattr(self.mapper, name)

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={value!r}" for name, value in self.values.items())
        return f"{self.mapper.__name__}.with_options({settings})"
