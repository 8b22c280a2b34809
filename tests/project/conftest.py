"""Fixtures of the project tests: one wheel of this checkout, built once a run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.harness.packaging import build_wheel, sh


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from this checkout, shared by every test that installs one."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def tools(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the wheel: where the user runs pcreate from."""
    venv = tmp_path_factory.mktemp("tools") / "venv"
    sh(sys.executable, "-m", "venv", venv)
    sh(venv / "bin" / "pip", "install", "-q", str(wheel))
    return venv
