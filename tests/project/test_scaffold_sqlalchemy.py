"""The aio_sqlalchemy scaffold, set up by its README alone, on SQLite and PostgreSQL.

The wheel's ``pcreate`` makes the project, and the steps of its README's
"Getting started" run literally in that folder, with ``AIOPYRAMID`` set to
the wheel: a fresh virtualenv holding exactly what they install, alembic's
migration, the sample notes, the project's own tests, then ``pserve``, whose
pages are fetched over HTTP and used in headless Chromium.

The same virtualenv then follows the README's "On PostgreSQL": its
``createuser`` and ``createdb`` lines, its URL lines (asyncpg for the
application, psycopg for alembic and the scripts) in development.ini and
testing.ini, and the steps after the installs again.  Last, production.ini
serves its two workers on PostgreSQL, and a burst of requests stays within
the connections its comments count.

What differs from the reader's run, and why:

* ``pserve`` serves a copy of the ini whose port is a free one, not 6543,
  with gunicorn's control socket in a folder of the test's own;
* PostgreSQL is the test's throwaway server (the ``postgres`` fixture), not
  the one Debian's package starts on port 5432: the ``apt-get`` line is not
  run, the ``sudo -u postgres`` lines run without sudo, as the server's
  superuser through ``PGHOST`` and ``PGPORT``, and in the URLs ``5432``
  becomes that server's port.  It trusts local connections, so the
  password typed at ``createuser`` goes unchecked.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.browser import chromium
from tests.harness.packaging import literal_lines, sh
from tests.harness.postgres import PostgresServer
from tests.harness.servers import ARTIFACTS, UNIT, free_port, running

pytestmark = pytest.mark.server

PROJECT = "Notes_App"
PACKAGE = "notes_app"
#: The password the README's ``createuser --pwprompt`` asks for, typed twice.
PASSWORD = "secret"
#: What initialize_notes_app_db adds to an empty database.
SAMPLES = 3


@dataclasses.dataclass
class Project:
    """A generated project, installed by its README's steps."""

    folder: Path
    #: The README's steps after the installs, which each database runs again.
    database_steps: list[str]
    #: The README's last step, which serves the project.
    serve: str
    #: Where gunicorn puts its control socket (XDG_RUNTIME_DIR), not ~/.gunicorn.
    runtime: Path

    @property
    def readme(self) -> str:
        """The project's README."""
        return (self.folder / "README.rst").read_text()

    def run(self, step: str) -> str:
        """Run a step of the README in the project's folder, as its reader would."""
        return sh("bash", "-c", step, cwd=self.folder)


@pytest.fixture(scope="module")
def project(tools: Path, wheel: Path, tmp_path_factory: pytest.TempPathFactory):
    """The project, made by pcreate, with the README's installs done."""
    where = tmp_path_factory.mktemp("aio_sqlalchemy")
    sh(tools / "bin" / "pcreate", "-q", "-s", "aio_sqlalchemy", PROJECT, cwd=where)
    folder = where / PROJECT
    steps = literal_lines((folder / "README.rst").read_text(), "Getting started")
    *setup, serve = steps
    installs = [step for step in setup if " -m venv " in step or "pip install" in step]
    assert setup[: len(installs)] == installs, "installs come first"
    for step in installs:
        sh("bash", "-c", step, cwd=folder, env={"AIOPYRAMID": str(wheel)})
    runtime = where / "runtime"
    runtime.mkdir()
    return Project(folder, setup[len(installs) :], serve, runtime)


def served(project: Project, ini: str, port: int) -> list[str]:
    """The README's serving command, on a copy of ``ini`` listening on ``port``."""
    text = (project.folder / ini).read_text().replace("port = 6543", f"port = {port}")
    assert f"port = {port}" in text
    copy = f"test-{port}-{ini}"
    (project.folder / copy).write_text(text)
    assert project.serve.endswith(" development.ini")
    return project.serve.replace("development.ini", copy).split()


def serving(project: Project, ini: str = "development.ini"):
    """pserve on ``ini``, without this checkout on PYTHONPATH: the wheel serves."""
    port = free_port()
    env = {"PYTHONPATH": "", "XDG_RUNTIME_DIR": str(project.runtime)}
    command = served(project, ini, port)
    return running(command, port, cwd=project.folder, env=env)


def get(url: str) -> tuple[int, str]:
    """The status and body of ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=10 * UNIT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def check_pages(url: str) -> None:
    """Each kind of view answers over HTTP, from the sample notes."""
    status, home = get(url + "/")
    assert status == 200
    assert home.count('<li><a href="/notes/') == SAMPLES
    (first,) = re.findall(r'href="/notes/(\d+)">Plain views', home)
    status, page = get(f"{url}/notes/{first}")  # the route factory's query
    assert status == 200
    assert '<blockquote id="note">Plain views and the route factory' in page
    status, missing = get(url + "/notes/999999")
    assert (status, "There is no note 999999." in missing) == (404, True)
    status, api = get(url + "/api/notes")  # the coroutine view
    assert status == 200
    assert len(json.loads(api)["notes"]) == SAMPLES


def use_in_chromium(url: str, screenshot: str) -> None:
    """A reader adds a note with the home page's form, in a real browser."""
    not_found: list[str] = []
    timeout = 10_000 * UNIT  # milliseconds
    with chromium() as browser:
        page = browser.new_page()
        page.on("response", lambda r: r.status >= 400 and not_found.append(r.url))
        page.goto(url + "/")
        assert page.locator("#notes li").count() == SAMPLES
        page.fill("#text", "typed in Chromium")
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/notes/\d+$"), timeout=timeout)
        assert page.text_content("#note") == "typed in Chromium"
        page.goto(url + "/")
        newest = page.locator("#notes li a").first.text_content()
        page.screenshot(path=str(ARTIFACTS / screenshot))
    assert newest == "typed in Chromium"
    assert not_found == []


def run_database_steps(project: Project) -> dict[str, str]:
    """The README's steps after the installs: migrate, add samples, test."""
    return {step: project.run(step) for step in project.database_steps}


def check_outputs(outputs: dict[str, str]) -> None:
    """alembic, then the sample notes, then the project's tests, all passing."""
    steps = list(outputs)
    assert [step.split()[0] for step in steps] == [
        ".venv/bin/alembic",
        f".venv/bin/initialize_{PACKAGE}_db",
        ".venv/bin/pytest",
    ]
    assert outputs[steps[1]] == f"Added {SAMPLES} sample notes.\n"
    summary = outputs[steps[2]].strip().splitlines()[-1]
    assert re.fullmatch(r"=* ?\d+ passed(, \d+ warnings?)? in .*", summary), summary


def test_readme_on_sqlite(project: Project):
    """On aiosqlite: migrate, samples, tests pass, pserve's pages, Chromium."""
    check_outputs(run_database_steps(project))
    assert (project.folder / f"{PACKAGE}.sqlite").is_file()
    with serving(project) as server:
        check_pages(server.url)
        use_in_chromium(server.url, "aio_sqlalchemy_sqlite.png")
        log = server.log()
    assert "Using worker: aiopyramid.gunicorn.worker.AsyncGunicornWorker" in log
    assert "Traceback" not in log


@pytest.fixture(scope="module")
def on_postgresql(project: Project, postgres: PostgresServer) -> Iterator[Project]:
    """The project moved to PostgreSQL as the README's "On PostgreSQL" says."""
    readme = project.readme
    admin = literal_lines(readme, "On PostgreSQL")
    assert admin[0] == "sudo apt-get install postgresql"  # the postgres fixture's
    environ = {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGUSER": "postgres",
    }
    try:
        for line in admin[1:]:
            command = line.removeprefix("sudo -u postgres ")
            assert command.startswith(("createuser ", "createdb ")), line
            subprocess.run(
                ["bash", "-c", command],
                input=f"{PASSWORD}\n{PASSWORD}\n",
                env={"PATH": f"{postgres.bin}:/usr/bin:/bin", **environ},
                capture_output=True,
                text=True,
                check=True,
                timeout=30 * UNIT,
                start_new_session=True,  # no terminal: the password from stdin
            )
        urls = literal_lines(readme, "then write its URLs")
        assert [line.split(" = ")[0] for line in urls] == [
            "sqlalchemy.url",
            "scripts.sqlalchemy.url",
        ]
        local = [
            line.replace("@127.0.0.1:5432/", f"@127.0.0.1:{postgres.port}/")
            for line in urls
        ]
        assert all(f":{postgres.port}/{PACKAGE}" in line for line in local), local
        write_urls(project.folder / "development.ini", local)
        test_urls = [line + "_test" for line in local]  # "the database ..._test"
        write_urls(project.folder / "testing.ini", test_urls)
        yield project
    finally:
        for database in (PACKAGE, f"{PACKAGE}_test"):
            postgres.drop_database(database)
        postgres.sql("postgres", f"DROP ROLE IF EXISTS {PACKAGE}")


def write_urls(ini: Path, lines: list[str]) -> None:
    """Replace the ini's two URL lines with ``lines``, as the reader edits them."""
    text = ini.read_text()
    for line in lines:
        key = line.split(" = ")[0]
        text, count = re.subn(rf"^{re.escape(key)} = .*$", line, text, flags=re.M)
        assert count == 1, (key, ini)
    ini.write_text(text)


def test_readme_on_postgresql(on_postgresql: Project, postgres: PostgresServer):
    """On asyncpg: the same steps, pages and browser; the notes are in PostgreSQL."""
    project = on_postgresql
    check_outputs(run_database_steps(project))
    with serving(project) as server:
        check_pages(server.url)
        use_in_chromium(server.url, "aio_sqlalchemy_postgresql.png")
        log = server.log()
    assert "Traceback" not in log
    rows = postgres.sql(PACKAGE, "SELECT text FROM notes ORDER BY id")
    assert rows.splitlines()[-1] == "typed in Chromium"
    # The project's tests migrated their database, and downgraded it after.
    test_database = f"{PACKAGE}_test"
    assert postgres.sql(test_database, "SELECT count(*) FROM alembic_version") == "0"
    assert postgres.sql(test_database, "SELECT to_regclass('notes')") == ""


def test_production_ini_serves_two_workers_within_their_pools(
    on_postgresql: Project, postgres: PostgresServer
):
    """production.ini on PostgreSQL: 200 requests, at most 2 x (10 + 5) connections."""
    project = on_postgresql
    ini = project.folder / "production.ini"
    text = ini.read_text()
    assert "workers = 2" in text
    assert "2 x (10 + 5) = 30" in text
    ini.write_text(text.replace("@127.0.0.1:5432/", f"@127.0.0.1:{postgres.port}/"))
    count = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{PACKAGE}'"
    with serving(project, "production.ini") as server:
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            urls = [server.url + path for path in ("/", "/api/notes") * 100]
            statuses = [status for status, _ in pool.map(get, urls)]
        connections = int(postgres.sql("postgres", count))
        log = server.log()
    assert statuses == [200] * len(urls)
    assert 1 <= connections <= 30
    assert log.count("Booting worker") == 2
