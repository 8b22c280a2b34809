"""The garbage collector's settings for a process that serves requests.

The gunicorn worker and ``pserve``'s granian workers apply them once the
application is loaded (:func:`tune_collector`):

* ``aiopyramid.gc_freeze`` (default true): what is alive then (modules,
  Pyramid's configuration, SQLAlchemy's mappers) lives as long as the
  process, and is moved out of the collector's reach (``gc.freeze()``), so
  that full collections no longer traverse it (a tutorial-shaped app's held
  the loop 65 ms, 10 ms after);
* ``aiopyramid.gc_threshold`` (default :data:`DEFAULT_GC_THRESHOLD`, ``0``:
  Python's own, 700): the collector's first threshold.  Python collects its
  youngest generation once 700 more objects were made than freed.  With a
  thousand requests waiting at once (80 objects each) that happened every
  25 requests, and each collection moved what the waiting requests held to
  an older generation, so that a full collection, traversing all of it,
  came every 3,000 requests and held the loop 30-60 ms: 20-40 µs of CPU per
  request in all.  Objects freed by their reference count cost the
  collector nothing; a higher threshold only lets cyclic garbage (50,000
  objects, a few MB) wait longer.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any

from pyramid.settings import asbool

from ._settings import limit_setting

__all__ = ["DEFAULT_GC_THRESHOLD", "collector_settings", "tune_collector"]

#: The collector's first threshold unless ``aiopyramid.gc_threshold`` says
#: otherwise (Python's is 700).
DEFAULT_GC_THRESHOLD = 50_000


def collector_settings(settings: Mapping[str, Any]) -> tuple[bool, int | None]:
    """Whether to freeze, and the first threshold (``None``: Python's).

    A threshold that is not a whole number, 0 or more, raises
    :class:`~pyramid.exceptions.ConfigurationError` naming the setting.
    """
    value = settings.get("aiopyramid.gc_freeze")
    freeze = True if value is None or value == "" else asbool(value)
    threshold = limit_setting(
        settings,
        "aiopyramid.gc_threshold",
        int,
        DEFAULT_GC_THRESHOLD,
        f"Write e.g. aiopyramid.gc_threshold = {DEFAULT_GC_THRESHOLD}, or 0 "
        "to keep Python's own.",
        what="a whole number, 0 or more",
    )
    return freeze, threshold


def tune_collector(freeze: bool, threshold: int | None) -> None:
    """Freeze what is alive (if ``freeze``) and set the first threshold (if given)."""
    if freeze:
        gc.collect()
        gc.freeze()
    if threshold is not None:
        gc.set_threshold(threshold, *gc.get_threshold()[1:])
