"""A new user's first run: a generated project, installed from its README alone.

A wheel of aiopyramid is built; its ``pcreate`` makes a project; the steps of
the project's README are then run literally in that folder, with
``AIOPYRAMID`` pointing at the wheel, as the README tells the reader to set
it.  The served project must answer and log readable lines.
"""

from __future__ import annotations

import re
import sys
import urllib.request
from pathlib import Path

import pytest

from .packaging import build_wheel, literal_lines, sh
from .servers import free_port, running

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from this checkout."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def tools(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the wheel: where the user runs pcreate from."""
    venv = tmp_path_factory.mktemp("tools") / "venv"
    sh(sys.executable, "-m", "venv", venv)
    sh(venv / "bin" / "pip", "install", "-q", str(wheel))
    return venv


def test_pcreate_hint_names_its_own_virtualenv(tools: Path, tmp_path: Path):
    """pcreate's closing hint uses the pip and pserve next to it, not bare names."""
    pcreate = tools / "bin" / "pcreate"
    output = sh(pcreate, "-s", "aio_starter", "Hint_App", cwd=tmp_path)
    assert f"{tools / 'bin' / 'pip'} install -e Hint_App" in output
    assert f"cd Hint_App && {tools / 'bin' / 'pserve'} development.ini" in output


def test_starter_project_installs_and_serves_from_its_readme(
    tools: Path, wheel: Path, tmp_path: Path
):
    """README steps in a fresh venv: install, tests pass, pserve answers, logs read."""
    sh(tools / "bin" / "pcreate", "-q", "-s", "aio_starter", "Hello_App", cwd=tmp_path)
    project = tmp_path / "Hello_App"
    steps = literal_lines((project / "README.rst").read_text(), "Getting started")
    *setup, serve = steps
    assert serve == ".venv/bin/pserve development.ini"
    outputs = [
        sh("bash", "-c", step, cwd=project, env={"AIOPYRAMID": str(wheel)})
        for step in setup
    ]
    assert " passed" in outputs[-1]  # the project's own tests, via its README

    port = free_port()
    ini = (project / "development.ini").read_text()
    (project / "test.ini").write_text(ini.replace("port = 6543", f"port = {port}"))
    command = serve.replace("development.ini", "test.ini").split()
    with running(command, port, cwd=project) as server:
        with urllib.request.urlopen(server.url + "/", timeout=10) as response:
            assert response.status == 200
        log = server.log()
    assert "%(asctime)s" not in log
    # A real record of the application's start, formatted by the ini's format.
    line = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO +\[aiopyramid\] "
        r"plain views run on \d+ threads",
        re.MULTILINE,
    )
    assert line.search(log), log
