"""The tutorial, followed word for word in fresh virtual environments.

The test reads ``docs/tutorial.rst`` and does what its reader does:

* each ``code-block:: shell`` runs with ``bash -e``, in order, in the folder
  the previous one left (the tutorial's ``mkdir notes && cd notes``);
* each ``literalinclude`` is written into that folder under the name its
  ``:caption:`` gives;
* the servers (``pserve``, ``uwsgi``) and the feed's client, which the reader
  leaves running in terminals of their own, run as subprocesses;
* each ``code-block:: text`` must be what the command before it printed; the
  one captioned "second terminal", what the feed's client shows;
* headless Chromium opens the page in two tabs and posts a note in one: both
  tabs and the feed's client show it.

What differs from the reader's run, and why:

* ``AIOPYRAMID`` is this checkout: the tutorial's line setting it to the
  reader's own checkout is the one shell block not run;
* every ``6543`` in the blocks becomes one free port, chosen for the module:
  other servers on the machine may hold 6543;
* the ``apt-get`` lines need root: instead, the test checks that they name
  the packages uWSGI and PostgreSQL need and that they are installed;
* PostgreSQL is the test run's throwaway server (the ``postgres`` fixture),
  not the one Debian's package starts on port 5432: the ``sudo -u postgres``
  commands run without ``sudo``, as that server's superuser through
  ``PGHOST``, ``PGPORT`` and ``PGUSER``, and ``127.0.0.1:5432`` in the files
  becomes that server's address (it trusts local connections: the password
  goes unchecked);
* ``python3`` is the Python running the tests, and nothing else of the
  test's virtual environment leaks into the blocks or the servers: its
  ``bin`` folder is taken off ``PATH`` (a bare ``pserve`` in the tutorial
  cannot pass for ``.venv/bin/pserve``), and ``PYTHONPATH`` is unset;
* the servers get an ``XDG_RUNTIME_DIR`` of their own, where gunicorn 27 puts
  its control socket (otherwise ``~/.gunicorn``, shared by every gunicorn);
* ``notes.sqlite`` is removed before each server starts, and its table made
  again by the tutorial's own command, so the ids the tutorial shows hold
  whichever server runs first;
* the server and feed commands start without a shell: their leading
  ``NAME=value`` words become environment variables, as in a shell.

One fresh project (and its two virtual environments) serves the module.
The PostgreSQL section runs on the same project, with the gunicorn
section's steps again, as it says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.browser import chromium
from tests.harness.postgres import PostgresServer
from tests.harness.servers import (
    ARTIFACTS,
    ROOT,
    UNIT,
    ServerProcess,
    free_port,
    require,
    running,
    wait_until,
)
from tests.harness.uwsgi import APT_PACKAGES, missing_uwsgi

pytestmark = pytest.mark.server

DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.rst"
#: The port the tutorial uses, and the command prompt of the feed's client.
PORT = "6543"
PROMPT = ">"

DIRECTIVE = re.compile(r"^\.\. (code-block|literalinclude):: (\S+)$")
OPTION = re.compile(r"^   :(\w+):(.*)$")
#: Terminal control sequences the feed's client writes around each message.
ESCAPE = re.compile(r"\x1b(\[[0-9;]*[A-Za-z]|[78])|\r")


@dataclasses.dataclass
class Step:
    """One block of the tutorial: what the reader types, creates or sees."""

    kind: str
    text: str
    section: str
    name: str = ""


def kind_of(directive: str, argument: str, caption: str, text: str) -> str:
    """What the reader does with a block; unknown blocks fail the test."""
    if directive == "literalinclude":
        assert caption, f"name the file {argument} with a :caption:"
        return "file"
    if argument == "text":
        return "feed output" if caption == "second terminal" else "output"
    assert argument == "shell", f"a code-block the test cannot follow: {argument}"
    if text.startswith("AIOPYRAMID="):
        return "checkout"
    if "apt-get install" in text:
        return "packages"
    if text.startswith("sudo -u postgres "):
        return "superuser"
    if text.startswith(".venv/bin/python notes.py "):
        return "table"
    if "pserve " in text or text.startswith("uwsgi "):
        return "server"
    if " -m websockets " in text:
        return "feed"
    if text.startswith("curl "):
        return "request"
    return "shell"


def read_steps(path: Path = TUTORIAL) -> list[Step]:
    """The tutorial's blocks, in order, with the section each is in."""
    lines = path.read_text().splitlines()
    steps = []
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        underline = lines[index + 1] if index + 1 < len(lines) else ""
        if line and underline and set(underline) <= set("=-"):
            section = line
        # A literal block made with "::" would be skipped here, untested.
        assert not line.endswith("::") or DIRECTIVE.match(line), line
        match = DIRECTIVE.match(line)
        index += 1
        if match is None:
            continue
        directive, argument = match.groups()
        options = {}
        while index < len(lines) and (option := OPTION.match(lines[index])):
            options[option[1]] = option[2].strip()
            index += 1
        caption = options.get("caption", "")
        if directive == "literalinclude":
            text = (DOCS / argument).read_text()
        else:
            body = []
            while index < len(lines) and (
                not lines[index] or lines[index].startswith(" ")
            ):
                body.append(lines[index])
                index += 1
            text = textwrap.dedent("\n".join(body)).strip("\n")
        kind = kind_of(directive, argument, caption, text)
        steps.append(Step(kind, text, section, caption))
    return steps


def in_section(steps: list[Step], title: str) -> list[Step]:
    """The steps of the section ``title``."""
    found = [step for step in steps if step.section == title]
    assert found, f"the tutorial has no section {title!r}"
    return found


def split_at_server(steps: list[Step]) -> tuple[list[Step], Step, list[Step]]:
    """A section's steps before its server command, that command, and after."""
    (at,) = [n for n, step in enumerate(steps) if step.kind == "server"]
    return steps[:at], steps[at], steps[at + 1 :]


def split_words(text: str) -> list[str]:
    """The words of a one-command block, as the shell splits them."""
    return shlex.split(text.replace("\\\n", " "))  # joins continued lines


def command(text: str) -> tuple[dict[str, str], list[str]]:
    """A command's leading ``NAME=value`` words, and its arguments."""
    # Run without a shell: nothing here may need one.
    assert re.search(r"[;&|<>$`*?]", text) is None, f"needs a shell: {text}"
    words = split_words(text)
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def feed_lines(output: str) -> list[str]:
    """What the feed's client shows, without its prompts and control codes."""
    lines = []
    for line in ESCAPE.sub("", output).splitlines():
        while line.startswith(PROMPT):
            line = line[len(PROMPT) :].lstrip()
        if line:
            lines.append(line)
    return lines


class Feed:
    """The feed's client, left running as in the reader's second terminal."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.output = cwd.parent / "feed.log"
        with self.output.open("wb") as log:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )

    def lines(self) -> list[str]:
        """The lines shown so far."""
        return feed_lines(self.output.read_text(errors="replace"))

    def shows(self, expected: list[str], seconds: float = 5) -> None:
        """Wait until the client shows exactly ``expected`` (prompts aside)."""
        expected = feed_lines("\n".join(expected))
        with contextlib.suppress(AssertionError):
            wait_until(lambda: self.lines() == expected, seconds)
        assert self.lines() == expected

    def ends(self, seconds: float = 5) -> None:
        """Wait until the client reports the connection closed and exits."""
        with contextlib.suppress(AssertionError):
            wait_until(lambda: self.process.poll() is not None, seconds)
        assert self.process.poll() is not None, self.lines()
        assert self.lines()[-1].startswith("Connection closed: "), self.lines()

    def close(self) -> None:
        """End the client as the reader does with Ctrl-D: it closes the feed."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(5 * UNIT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Reader:
    """Someone following the tutorial: where they are, what they typed."""

    def __init__(self, home: Path, port: int) -> None:
        self.cwd = home
        self.port = port
        self.cwd_file = home / ".cwd"
        self.env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("PYTHONPATH", "COVERAGE_PROCESS_START", "VIRTUAL_ENV")
        }
        tools = home / "bin"
        tools.mkdir()
        python3 = tools / "python3"
        python3.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
        python3.chmod(0o755)
        own_bin = Path(sys.prefix) / "bin"
        self.env["PATH"] = os.pathsep.join(
            [
                str(tools),
                *(
                    folder
                    for folder in self.env.get("PATH", "").split(os.pathsep)
                    if folder and Path(folder) != own_bin
                ),
            ]
        )
        self.env["AIOPYRAMID"] = str(ROOT)
        self.runtime_dir = home / "runtime"
        self.runtime_dir.mkdir()
        #: What the tutorial says, and what the test's machine has instead.
        self.replacements = {PORT: str(port)}
        #: The environment of the PostgreSQL superuser's commands.
        self.superuser_env: dict[str, str] | None = None
        #: The command that makes the table in notes.sqlite, once typed.
        self.sqlite_table: Step | None = None

    def local(self, text: str) -> str:
        """``text`` with the test's port (and servers) for the tutorial's."""
        for said, here in self.replacements.items():
            text = text.replace(said, here)
        return text

    def shell(
        self, text: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> str:
        """Run a block with bash where the reader is; follow its ``cd``."""
        script = f"{self.local(text)}\npwd > {shlex.quote(str(self.cwd_file))}\n"
        process = subprocess.Popen(
            ["bash", "-e", "-c", script],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout * UNIT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"{text!r} took over {timeout * UNIT} s:\n{out}\n{err}")
        if process.returncode != 0:
            pytest.fail(f"{text!r} failed ({process.returncode}):\n{out}\n{err}")
        self.cwd = Path(self.cwd_file.read_text().strip())
        return out

    def follow(self, steps: list[Step]) -> None:
        """Type the commands and create the files of ``steps``."""
        for step in steps:
            if step.kind == "checkout":
                # The reader's own checkout; this one is in self.env instead.
                assert re.fullmatch(r"AIOPYRAMID=~/\S+", step.text), step.text
            elif step.kind == "file":
                (self.cwd / step.name).write_text(self.local(step.text))
            elif step.kind == "shell":
                self.shell(step.text, timeout=600)  # pip installs: minutes
            elif step.kind == "table":
                self.shell(step.text)
                if step.text.endswith(" development.ini"):
                    self.sqlite_table = step
            elif step.kind == "superuser":
                # As the test server's superuser: no sudo, its address.
                assert self.superuser_env is not None, "no PostgreSQL server"
                lines = step.text.splitlines()
                assert all(line.startswith("sudo -u postgres ") for line in lines)
                commands = [line.removeprefix("sudo -u postgres ") for line in lines]
                self.shell("\n".join(commands), env=self.superuser_env)
            else:
                pytest.fail(f"a {step.kind} step before the server: {step.text}")

    @contextlib.contextmanager
    def serving(self, step: Step) -> Iterator[ServerProcess]:
        """Start the server command of ``step`` on an empty database."""
        (self.cwd / "notes.sqlite").unlink(missing_ok=True)
        assert self.sqlite_table is not None, "the tutorial makes no table"
        self.shell(self.sqlite_table.text)
        env, args = command(self.local(step.text))
        env = {
            "PATH": self.env["PATH"],
            "PYTHONPATH": "",
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            **env,
        }
        with running(args, self.port, cwd=self.cwd, env=env) as server:
            yield server

    @contextlib.contextmanager
    def trying(self, steps: list[Step]) -> Iterator[Feed]:
        """Run the requests and the feed of ``steps``, checking each output."""
        feed: Feed | None = None
        typed = printed = ""
        try:
            for step in steps:
                expected = self.local(step.text)
                if step.kind == "feed":
                    env, args = command(expected)
                    feed = Feed(args, self.cwd, {**self.env, **env})
                    printed = "feed"
                elif step.kind == "request":
                    typed, printed = step.text, self.shell(step.text)
                elif step.kind == "feed output" or (
                    step.kind == "output" and printed == "feed"
                ):
                    assert feed is not None, "the feed's output before its command"
                    feed.shows(expected.splitlines())
                    # The reader's pace, part of the input: the server adds
                    # the feed in on_open, just after the handshake the
                    # client reports (nothing shows when), and a reader
                    # takes longer than this to switch terminals.
                    time.sleep(0.2 * UNIT)
                elif step.kind == "output":
                    assert printed.strip() == expected, f"{typed} printed otherwise"
                else:
                    pytest.fail(f"a {step.kind} step after the server: {step.text}")
            assert feed is not None, "the tutorial no longer opens the feed"
            yield feed
        finally:
            if feed is not None:
                feed.close()


def interrupt(server: ServerProcess) -> None:
    """Press Ctrl-C in the server's terminal: SIGINT to its process group."""
    os.killpg(server.process.pid, signal.SIGINT)
    try:
        server.process.wait(15 * UNIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not stop on Ctrl-C:\n{server.log()}")


def get(url: str) -> str:
    """The body of ``url``."""
    with urllib.request.urlopen(url, timeout=5 * UNIT) as response:
        return response.read().decode()


def browse(server: ServerProcess, feed: Feed, screenshot: str) -> None:
    """Two tabs list the notes; a note posted in one shows in both and the feed."""
    listed = [note["text"] for note in json.loads(get(server.url + "/notes"))["notes"]]
    assert listed, "the steps before the browser posted no note"
    shown = feed.lines()
    timeout = 10_000 * UNIT  # milliseconds
    with chromium() as browser:
        tabs = [browser.new_page(), browser.new_page()]
        for tab in tabs:
            tab.goto(server.url + "/")
            tab.wait_for_selector(f"#notes li:text-is('{listed[-1]}')", timeout=timeout)
        tabs[0].fill("input[name=text]", "call mum")
        tabs[0].click("button")
        for tab in tabs:
            tab.wait_for_selector("#notes li:text-is('call mum')", timeout=timeout)
        items = [tab.locator("#notes li").all_inner_texts() for tab in tabs]
        tabs[1].screenshot(path=str(ARTIFACTS / screenshot))
    assert items == [[*listed, "call mum"]] * 2
    feed.shows([*shown, "< call mum"])


@pytest.fixture(scope="module")
def steps() -> list[Step]:
    """The tutorial's steps."""
    return read_steps()


@pytest.fixture(scope="module")
def reader(steps: list[Step], tmp_path_factory: pytest.TempPathFactory) -> Reader:
    """A reader who made the project and wrote its files: up to ``pserve``."""
    require(shutil.which("curl") is not None, "curl is not installed")
    reader = Reader(tmp_path_factory.mktemp("tutorial"), free_port())
    reader.follow(in_section(steps, "What you need"))
    reader.follow(in_section(steps, "Make the project"))
    reader.follow(in_section(steps, "The application"))
    before, _, _ = split_at_server(in_section(steps, "Serve it with gunicorn"))
    reader.follow(before)
    assert reader.cwd.name == "notes"
    return reader


@pytest.fixture(scope="module")
def uwsgi_reader(steps: list[Step], reader: Reader) -> Reader:
    """The same reader, once the uWSGI section's set-up is done."""
    before, _, _ = split_at_server(in_section(steps, "Serve it with uWSGI"))
    (packages,) = [step for step in before if step.kind == "packages"]
    named = split_words(packages.text)
    assert named[:3] == ["sudo", "apt-get", "install"]
    assert sorted(named[3:]) == sorted(APT_PACKAGES.split())
    reason = missing_uwsgi()
    require(reason is None, reason or "")
    reader.follow([step for step in before if step.kind != "packages"])
    return reader


@pytest.fixture(scope="module")
def postgres_reader(
    steps: list[Step], reader: Reader, postgres: PostgresServer
) -> Iterator[Reader]:
    """The same reader, once the PostgreSQL section's set-up is done."""
    before, _, _ = split_at_server(in_section(steps, "Move to PostgreSQL"))
    (packages,) = [step for step in before if step.kind == "packages"]
    assert split_words(packages.text) == ["sudo", "apt-get", "install", "postgresql"]
    reader.replacements["127.0.0.1:5432"] = f"127.0.0.1:{postgres.port}"
    reader.superuser_env = {
        "PATH": f"{postgres.bin}{os.pathsep}{reader.env['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGUSER": "postgres",
    }
    try:
        reader.follow([step for step in before if step.kind != "packages"])
        yield reader
    finally:
        postgres.drop_database("notes")
        postgres.sql("postgres", "DROP ROLE IF EXISTS notes")


def test_pserve_serves_the_tutorial(steps: list[Step], reader: Reader) -> None:
    """Under pserve and the gunicorn worker, every step prints what it says."""
    _, server_step, after = split_at_server(in_section(steps, "Serve it with gunicorn"))
    with reader.serving(server_step) as server, reader.trying(after) as feed:
        browse(server, feed, "tutorial-pserve.png")
        csv_text = get(server.url + "/notes.csv")
        interrupt(server)
        feed.ends()
        log = server.log()
    assert csv_text.splitlines() == ["id,text", "1,buy milk", "2,call mum"]
    assert "Using worker: aiopyramid.gunicorn.worker.AsyncGunicornWorker" in log
    assert server.process.returncode == 0, log


def test_postgres_serves_the_tutorial(
    steps: list[Step], postgres_reader: Reader, postgres: PostgresServer
) -> None:
    """On PostgreSQL the gunicorn section's steps print the same, within the pool."""
    section = in_section(steps, "Move to PostgreSQL")
    _, server_step, after = split_at_server(section)
    assert after == [], "steps after pserve's command: the test follows none"
    (ini,) = [step for step in section if step.name == "postgres.ini"]
    assert "sqlalchemy.pool_size = 5\nsqlalchemy.max_overflow = 5\n" in ini.text
    # "Everything works as it did with SQLite": the same steps again.
    _, _, trying = split_at_server(in_section(steps, "Serve it with gunicorn"))
    in_use = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'notes'"
    with (
        postgres_reader.serving(server_step) as server,
        postgres_reader.trying(trying) as feed,
    ):
        browse(server, feed, "tutorial-postgres.png")
        csv_text = get(server.url + "/notes.csv")
        connections = int(postgres.sql("postgres", in_use))
        interrupt(server)
        feed.ends()
        log = server.log()
    assert csv_text.splitlines() == ["id,text", "1,buy milk", "2,call mum"]
    stored = postgres.sql("notes", "SELECT id, text FROM notes ORDER BY id")
    assert stored.splitlines() == ["1|buy milk", "2|call mum"]
    assert 1 <= connections <= 5 + 5  # pool_size + max_overflow
    assert server.process.returncode == 0, log


def test_uwsgi_serves_the_tutorial(steps: list[Step], uwsgi_reader: Reader) -> None:
    """Under uWSGI the same steps print the same, as the tutorial says."""
    _, server_step, after = split_at_server(in_section(steps, "Serve it with uWSGI"))
    assert after == [], "steps after uwsgi's command: the test follows none"
    # "Everything works as it did with gunicorn": the same steps again.
    _, _, trying = split_at_server(in_section(steps, "Serve it with gunicorn"))
    with (
        uwsgi_reader.serving(server_step) as server,
        uwsgi_reader.trying(trying) as feed,
    ):
        browse(server, feed, "tutorial-uwsgi.png")
        interrupt(server)
        feed.ends()
        log = server.log()
    assert "spawned uWSGI master process" in log
    assert server.process.returncode == 0, log


def test_uwsgi_log_stays_quiet_when_a_feed_closes(
    steps: list[Step], uwsgi_reader: Reader
) -> None:
    """A reader closing the feed's client leaves no traceback in uWSGI's log."""
    _, server_step, _ = split_at_server(in_section(steps, "Serve it with uWSGI"))
    _, _, trying = split_at_server(in_section(steps, "Serve it with gunicorn"))
    with uwsgi_reader.serving(server_step) as server:
        with uwsgi_reader.trying(trying):
            pass
        # uWSGI logs the feed's request once its greenlet has ended.
        wait_until(lambda: "GET /feed =>" in server.log())
        assert "Traceback" not in server.log()
