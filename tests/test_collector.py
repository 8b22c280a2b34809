"""The garbage collector's settings (aiopyramid._collector)."""

from __future__ import annotations

import gc

import pytest
from pyramid.exceptions import ConfigurationError

from aiopyramid._collector import (
    DEFAULT_GC_THRESHOLD,
    collector_settings,
    tune_collector,
)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, (True, DEFAULT_GC_THRESHOLD)),
        ({"aiopyramid.gc_threshold": "1234"}, (True, 1234)),
        ({"aiopyramid.gc_threshold": "0"}, (True, None)),
        ({"aiopyramid.gc_freeze": "false"}, (False, DEFAULT_GC_THRESHOLD)),
    ],
)
def test_settings_are_read(settings, expected):
    """Freezing is on and the threshold 50,000 unless the settings say otherwise."""
    assert collector_settings(settings) == expected


@pytest.mark.parametrize("value", ["lots", "-1", "1.5"])
def test_a_bad_threshold_names_the_setting(value):
    """A threshold that is not a whole number, 0 or more, is refused by name."""
    with pytest.raises(ConfigurationError) as raised:
        collector_settings({"aiopyramid.gc_threshold": value})
    assert (
        f"aiopyramid.gc_threshold must be a whole number, 0 or more, not {value!r}"
        in str(raised.value)
    )


def test_tuning_sets_the_first_threshold_only():
    """The first threshold changes; the older generations' stay Python's."""
    before = gc.get_threshold()
    try:
        tune_collector(False, 4321)
        assert gc.get_threshold() == (4321, *before[1:])
        tune_collector(False, None)  # None: left as it is
        assert gc.get_threshold() == (4321, *before[1:])
    finally:
        gc.set_threshold(*before)
