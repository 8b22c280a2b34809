"""View mappers for websocket views, one per kind of server.

* :class:`WebsocketMapper` (from :mod:`.gunicorn`): ``AsyncGunicornWorker``
  and ASGI servers, through the ``websockets`` library;
* :class:`UWSGIWebsocketMapper` (from :mod:`.uwsgi`): uWSGI's asyncio plugin,
  through uWSGI's own websocket API.

Both give views the same ``ws`` interface.  This package imports whether or
not ``websockets`` or ``uwsgi`` can be imported: each mapper is loaded the
first time it is asked for, and a missing library is reported then, with what
to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gunicorn import WebsocketMapper
    from .uwsgi import UWSGIWebsocketMapper

__all__ = ["UWSGIWebsocketMapper", "WebsocketMapper"]

_HOMES = {
    "WebsocketMapper": ".gunicorn",
    "UWSGIWebsocketMapper": ".uwsgi",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
