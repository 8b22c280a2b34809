"""Tests of the pcreate command and the scaffolds it renders."""

from __future__ import annotations

import configparser
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aiopyramid import pcreate
from tests.harness.packaging import literal_lines
from tests.harness.servers import ROOT, WORKER, import_required


def run_pcreate(
    tmp_path: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess:
    # This checkout's pcreate, whatever aiopyramid the environment installed.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "aiopyramid.pcreate", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
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
    assert "aio_sqlalchemy  Pyramid's SQLAlchemy starter on asyncio" in result.stdout


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


#: What ``pcreate -s aio_sqlalchemy Notes-App`` makes: Pyramid's SQLAlchemy layout.
SQLALCHEMY_FILES = {
    ".gitignore",
    "CHANGES.rst",
    "README.rst",
    "development.ini",
    "production.ini",
    "pyproject.toml",
    "testing.ini",
    "notes_app/__init__.py",
    "notes_app/routes.py",
    "notes_app/models/__init__.py",
    "notes_app/models/meta.py",
    "notes_app/models/note.py",
    "notes_app/views/__init__.py",
    "notes_app/views/default.py",
    "notes_app/views/notfound.py",
    "notes_app/templates/layout.jinja2",
    "notes_app/templates/home.jinja2",
    "notes_app/templates/note.jinja2",
    "notes_app/templates/404.jinja2",
    "notes_app/static/theme.css",
    "notes_app/static/favicon.svg",
    "notes_app/alembic/env.py",
    "notes_app/alembic/script.py.mako",
    "notes_app/alembic/versions/20261204_1b8f3e5c7a2d.py",
    "notes_app/scripts/__init__.py",
    "notes_app/scripts/initialize_db.py",
    "tests/conftest.py",
    "tests/test_scripts.py",
    "tests/test_views.py",
}


def read_ini(text: bytes, here: str = "/srv/notes") -> configparser.ConfigParser:
    """An ini file as PasteDeploy reads it, with ``%(here)s`` set."""
    parser = configparser.ConfigParser(defaults={"here": here})
    parser.read_string(text.decode())
    return parser


@pytest.fixture
def sqlalchemy_project(tmp_path) -> dict[str, bytes]:
    """The files of a project made with ``pcreate -s aio_sqlalchemy Notes-App``."""
    result = run_pcreate(tmp_path, "-s", "aio_sqlalchemy", "Notes-App", "-q")
    assert result.returncode == 0, result.stderr
    return tree(tmp_path / "Notes-App")


def test_sqlalchemy_scaffold_has_pyramids_layout(sqlalchemy_project):
    """The project has the starter's SQLAlchemy layout; its Python is complete."""
    assert set(sqlalchemy_project) == SQLALCHEMY_FILES
    for name, content in sqlalchemy_project.items():
        if name.endswith(".py"):
            assert b"cookiecutter" not in content, name
            compile(content, name, "exec")
    # Jinja2 and Mako templates are the application's own: copied verbatim.
    assert b"{{ project }}" in sqlalchemy_project["notes_app/templates/layout.jinja2"]
    assert b"${message}" in sqlalchemy_project["notes_app/alembic/script.py.mako"]


def test_sqlalchemy_scaffold_inis_name_one_database_twice(sqlalchemy_project):
    """development.ini: aiosqlite for the app, sqlite for the scripts, one file."""
    ini = read_ini(sqlalchemy_project["development.ini"])
    app = ini["app:main"]
    assert app["aiopyramid.mode"] == "greenlet"
    assert app["sqlalchemy.url"] == "sqlite+aiosqlite:////srv/notes/notes_app.sqlite"
    assert app["scripts.sqlalchemy.url"] == "sqlite:////srv/notes/notes_app.sqlite"
    assert ini["alembic"]["script_location"] == "notes_app:alembic"
    assert ini["server:main"]["worker_class"] == WORKER
    testing = read_ini(sqlalchemy_project["testing.ini"])["app:main"]
    assert testing["sqlalchemy.url"].endswith("/testing.sqlite")


def test_sqlalchemy_scaffold_production_ini_is_postgresql(sqlalchemy_project):
    """production.ini: asyncpg, psycopg for the scripts, a sized pool, the worker."""
    ini = read_ini(sqlalchemy_project["production.ini"])
    app = ini["app:main"]
    assert app["sqlalchemy.url"].startswith("postgresql+asyncpg://notes_app@")
    assert app["scripts.sqlalchemy.url"].startswith("postgresql+psycopg://notes_app@")
    assert {"pool_size", "max_overflow", "pool_pre_ping"} <= {
        key.removeprefix("sqlalchemy.") for key in app
    }
    assert ini["server:main"]["worker_class"] == WORKER
    assert int(ini["server:main"]["workers"]) > 1


def test_sqlalchemy_scaffold_readme_runs_what_the_project_defines(sqlalchemy_project):
    """The README's steps name the console script and ini that the project has."""
    steps = literal_lines(sqlalchemy_project["README.rst"].decode(), "Getting started")
    assert steps == [
        "python3 -m venv .venv",
        '.venv/bin/pip install "$AIOPYRAMID"',
        ".venv/bin/pip install -e '.[testing]'",
        ".venv/bin/alembic -c development.ini upgrade head",
        ".venv/bin/initialize_notes_app_db development.ini",
        ".venv/bin/pytest",
        ".venv/bin/pserve development.ini",
    ]
    # Read as text: tomllib is Python 3.11's, and 3.10 runs these tests too.
    pyproject = sqlalchemy_project["pyproject.toml"].decode()
    assert 'name = "Notes-App"' in pyproject
    script = 'initialize_notes_app_db = "notes_app.scripts.initialize_db:main"'
    assert f"[project.scripts]\n{script}\n" in pyproject
    dependencies = pyproject.split("dependencies = [", 1)[1].split("]\n", 1)[0]
    required = {
        name.lower() for name in re.findall(r'^ +"([\w.]+)', dependencies, re.M)
    }
    assert required >= {
        "aiopyramid",
        "pyramid",
        "pyramid_jinja2",
        "pyramid_tm",
        "zope.sqlalchemy",
        "sqlalchemy",
        "alembic",
        "aiosqlite",
        "asyncpg",
        "psycopg",
    }


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
    for name in ("aio_starter", "aio_websocket", "aio_sqlalchemy"):
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
