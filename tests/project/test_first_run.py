"""A new user's first run: a generated project, installed from its README alone.

A wheel of aiopyramid is built; its ``pcreate`` makes a project; the steps of
the project's README are then run literally in that folder, with
``AIOPYRAMID`` pointing at the wheel, as the README tells the reader to set
it.  The served project must answer and log readable lines.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.harness.browser import chromium, open_room, say
from tests.harness.packaging import literal_lines, sh
from tests.harness.servers import ARTIFACTS, ROOT, UNIT, free_port, running

pytestmark = pytest.mark.server


def test_pcreate_hint_names_its_own_virtualenv(tools: Path, tmp_path: Path):
    """pcreate's closing hint uses the pip and pserve next to it, not bare names."""
    pcreate = tools / "bin" / "pcreate"
    output = sh(pcreate, "-s", "aio_starter", "Hint_App", cwd=tmp_path)
    assert f"{tools / 'bin' / 'pip'} install -e Hint_App" in output
    assert f"cd Hint_App && {tools / 'bin' / 'pserve'} development.ini" in output


@pytest.fixture(scope="module", params=["aio_starter", "aio_websocket"])
def starter(
    request, tools: Path, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, list[str]]:
    """A generated project set up by its README's steps, run literally.

    Returns the project, the README's serving command, and what each setup
    step printed.
    """
    where = tmp_path_factory.mktemp(request.param)
    sh(tools / "bin" / "pcreate", "-q", "-s", request.param, "Hello_App", cwd=where)
    project = where / "Hello_App"
    steps = literal_lines((project / "README.rst").read_text(), "Getting started")
    *setup, serve = steps
    outputs = [
        sh("bash", "-c", step, cwd=project, env={"AIOPYRAMID": str(wheel)})
        for step in setup
    ]
    return project, serve, outputs


def get_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10 * UNIT) as response:
        return int(response.status)


def test_starter_project_installs_and_serves_from_its_readme(
    starter: tuple[Path, str, list[str]],
):
    """README steps in a fresh venv: install, tests pass, pserve answers, logs read."""
    project, serve, outputs = starter
    assert serve == ".venv/bin/pserve development.ini"
    assert " passed" in outputs[-1]  # the project's own tests, via its README
    port = free_port()
    ini = (project / "development.ini").read_text()
    (project / "test.ini").write_text(ini.replace("port = 6543", f"port = {port}"))
    command = serve.replace("development.ini", "test.ini").split()
    with running(command, port, cwd=project) as server:
        assert get_status(server.url + "/") == 200
        log = server.log()
    assert "%(asctime)s" not in log
    # A real record of the application's start, formatted by the ini's format.
    line = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO +\[aiopyramid\] "
        r"plain views run on \d+ threads",
        re.MULTILINE,
    )
    assert line.search(log), log


def test_readme_paste_command_binds_where_it_says(
    starter: tuple[Path, str, list[str]],
):
    """The README's ``gunicorn --paste`` line serves on the address it names."""
    project, _, _ = starter
    readme = (ROOT / "README.rst").read_text()
    (line,) = [
        line.strip()
        for line in readme.splitlines()
        if line.strip().startswith("gunicorn --paste development.ini")
    ]
    assert "-b 127.0.0.1:6543" in line
    port = free_port()
    args = line.replace("6543", str(port)).split()
    command = [str(project / ".venv" / "bin" / "gunicorn"), *args[1:]]
    with running(command, port, cwd=project) as server:
        assert get_status(server.url + "/") == 200


def checkout_copy(where: Path) -> Path:
    """This checkout's tracked files as they are now: a fresh clone, uncommitted
    changes included."""
    target = where / "aiopyramid"
    listed = sh("git", "ls-files", "-z", cwd=ROOT).split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_readme_first_command_serves_a_room_two_pages_share(tmp_path: Path):
    """The README's first command, from a fresh copy: two pages see one message.

    The command runs literally, except that pserve gets the demo's ini with a
    free port instead of 6543.  It installs only what it names
    (``.[gunicorn]``): the websocket must work with exactly that.
    """
    readme = (ROOT / "README.rst").read_text()
    (command,) = [
        line.strip()
        for line in readme.splitlines()
        if line.strip().startswith("python3 -m venv .venv && ")
    ]
    setup, serve = command.rsplit(" && ", 1)
    assert serve == "../.venv/bin/pserve development.ini"
    *build, enter = setup.split(" && ")
    demo = enter.removeprefix("cd ")
    checkout = checkout_copy(tmp_path)
    sh("bash", "-c", " && ".join(build), cwd=checkout, env={"PATH": clean_path()})
    project = checkout / demo
    port = free_port()
    ini = (project / "development.ini").read_text()
    (project / "test.ini").write_text(ini.replace("port = 6543", f"port = {port}"))
    not_found: list[str] = []
    with (
        running(serve.replace("development.ini", "test.ini").split(), port,
                cwd=project, env={"PYTHONPATH": ""}) as server,
        chromium() as browser,
    ):  # fmt: skip
        one = open_room(browser, server.url, not_found)
        two = open_room(browser, server.url, not_found)
        say(one, "typed in the first page")
        for page in (one, two):
            page.wait_for_selector("#log li:has-text('typed in the first page')")
        two.screenshot(path=str(ARTIFACTS / "readme_first_command.png"))
    assert not_found == []


def clean_path() -> str:
    """PATH without this test run's own virtualenv, as a new user's shell has."""
    own = str(Path(sys.executable).parent)
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != own)
