"""Installing this project as a user does: a built wheel, fresh virtualenvs,
and the literal steps that a README gives.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness.servers import ROOT


def sh(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> str:
    """Run a command outside this checkout's PYTHONPATH; fail with its output."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ.update(env or {})
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build_wheel(out: Path) -> Path:
    """A wheel of aiopyramid built from this checkout into ``out``."""
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, ROOT)
    (built,) = out.glob("aiopyramid-*.whl")
    return built


def literal_lines(text: str, introduction: str) -> list[str]:
    """The lines of the literal block that follows ``introduction`` in ``text``.

    ``introduction`` ends with ``::`` in the reStructuredText source.
    """
    start = text.index(introduction)
    block = re.search(r"::\n\n((?:    [^\n]*\n|\n)+)", text[start:])
    assert block is not None, f"no literal block after {introduction!r}"
    return [line for line in textwrap.dedent(block.group(1)).splitlines() if line]
