"""Tests of the pcreate command and the scaffolds it renders."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from aiopyramid import pcreate
from tests.harness.servers import import_required


def run_pcreate(
    tmp_path: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aiopyramid.pcreate", *args],
        cwd=tmp_path,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }


def test_list_shows_each_scaffold_with_its_description(tmp_path):
    """pcreate -l lists both scaffolds with one-line descriptions."""
    result = run_pcreate(tmp_path, "-l")
    assert result.returncode == 0
    assert "aio_starter     A hello-world Pyramid app" in result.stdout
    assert "aio_websocket   A websocket room app" in result.stdout


@pytest.mark.parametrize("scaffold", ["aio_starter", "aio_websocket"])
def test_scaffold_renders_a_complete_project(tmp_path, scaffold):
    """A project gets its package, inis, tests, README and CHANGES."""
    result = run_pcreate(tmp_path, "-s", scaffold, "Cool-App", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    files = tree(tmp_path / "Cool-App")
    for name in [
        "pyproject.toml",
        "README.rst",
        "CHANGES.rst",
        "development.ini",
        "production.ini",
        "uwsgi.ini",
        "cool_app/__init__.py",
        "cool_app/views.py",
        "tests/test_views.py",
    ]:
        assert name in files
    assert b"{{" not in files["cool_app/views.py"]
    assert b'name = "Cool-App"' in files["pyproject.toml"]
    assert b"aiopyramid.gunicorn.worker.AsyncGunicornWorker" in files["development.ini"]
    readme = files["README.rst"].decode()
    assert readme.startswith("Cool-App\n========\n")


def test_jinja2_page_is_copied_verbatim(tmp_path):
    """The websocket page's own Jinja2 syntax survives generation."""
    assert run_pcreate(tmp_path, "-s", "aio_websocket", "chat").returncode == 0
    page = (tmp_path / "chat/chat/templates/index.jinja2").read_text()
    assert "{{ project }}" in page


def test_simulate_writes_nothing(tmp_path):
    """--simulate lists the files it would write and writes none."""
    result = run_pcreate(tmp_path, "-s", "aio_starter", "--simulate", "demo")
    assert result.returncode == 0
    assert "would write" in result.stdout
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("1st", "not a valid Python identifier"),
        ("class", "not a valid Python identifier"),
        ("json", "can already be imported"),
        ("-x", "not a usable project name"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_written(tmp_path, name, message):
    """A bad project name gets a clear error and leaves no files behind."""
    result = run_pcreate(tmp_path, "-s", "aio_starter", "--", name)
    assert result.returncode == 1
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_target_is_refused_untouched(tmp_path):
    """An existing project directory is an error; its files stay as they were."""
    target = tmp_path / "proj"
    target.mkdir()
    (target / "README.rst").write_text("mine")
    result = run_pcreate(tmp_path, "-s", "aio_starter", "proj")
    assert result.returncode == 1
    assert "--overwrite" in result.stderr
    assert tree(target) == {"README.rst": b"mine"}


def test_overwrite_replaces_changed_files(tmp_path):
    """--overwrite replaces a changed file and leaves identical ones alone."""
    assert run_pcreate(tmp_path, "-s", "aio_starter", "proj").returncode == 0
    readme = tmp_path / "proj/README.rst"
    original = readme.read_bytes()
    readme.write_text("changed")
    result = run_pcreate(tmp_path, "-s", "aio_starter", "--overwrite", "proj")
    assert result.returncode == 0
    assert readme.read_bytes() == original
    assert "unchanged" in result.stdout


@pytest.mark.parametrize(("answer", "kept"), [("y\n", False), ("n\n", True)])
def test_interactive_asks_before_replacing(tmp_path, answer, kept):
    """--interactive asks for each changed file and obeys the answer."""
    assert run_pcreate(tmp_path, "-s", "aio_starter", "proj").returncode == 0
    readme = tmp_path / "proj/README.rst"
    readme.write_text("changed")
    result = run_pcreate(
        tmp_path, "-s", "aio_starter", "--interactive", "proj", stdin=answer
    )
    assert result.returncode == 0
    assert "Overwrite" in result.stdout
    assert (readme.read_text() == "changed") is kept


@pytest.mark.parametrize(
    ("args", "message"),
    [((), "give a scaffold and a project name"), (("-s", "nope", "x"), "no scaffold")],
)
def test_usage_errors(tmp_path, args, message):
    """Missing arguments or an unknown scaffold explain what to type."""
    result = run_pcreate(tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_same_templates_work_with_cookiecutter(tmp_path):
    """cookiecutter renders the repository's templates to the same files."""
    cookiecutter = import_required("cookiecutter.main")
    root = pcreate.scaffolds_root()
    for name in ("aio_starter", "aio_websocket"):
        out = tmp_path / name
        cookiecutter.cookiecutter(
            str(root / name),
            no_input=True,
            extra_context={"project_name": "Same"},
            output_dir=str(out / "cc"),
        )
        (out / "pc").mkdir()
        pcreate.make_project(
            pcreate.find_scaffolds()[name], out / "pc" / "Same", say=io.StringIO().write
        )
        assert tree(out / "cc" / "Same") == tree(out / "pc" / "Same")
