"""``pcreate``: make a new project from one of aiopyramid's scaffolds.

Pyramid 2 dropped ``pcreate``; this command keeps what users typed working::

    pcreate -l                          # list the scaffolds
    pcreate -s aio_starter MyProject    # make ./MyProject
    pcreate -s aio_websocket --simulate Chat

The scaffolds are cookiecutter templates (Pyramid 2's convention) kept in
the repository's ``scaffolds/`` folder and shipped inside the package; the
same templates work with ``cookiecutter scaffolds/aio_starter``.  Everything is
rendered in memory and checked before the first file is written, so a bad
name or an existing target writes nothing.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import keyword
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .exceptions import AiopyramidError

__all__ = ["Scaffold", "find_scaffolds", "main"]


class PcreateError(AiopyramidError):
    """A project cannot be made as asked; the message says why and what to do."""


def scaffolds_root() -> Path:
    """The folder holding the scaffolds: in the installed package, or the checkout."""
    installed = Path(__file__).parent / "scaffolds"
    if (installed / "aio_starter").is_dir():
        return installed
    return Path(__file__).parent.parent / "scaffolds"


class Scaffold:
    """One cookiecutter template: its name, description and default context."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        self.defaults: dict[str, Any] = json.loads(
            (path / "cookiecutter.json").read_text(encoding="utf-8")
        )
        self.description = str(self.defaults.get("_description", ""))

    def context(self, project_name: str) -> dict[str, Any]:
        """Render the template's variables in order, as cookiecutter does."""
        from jinja2 import Environment, StrictUndefined

        environment = Environment(undefined=StrictUndefined)
        context: dict[str, Any] = {}
        for key, value in self.defaults.items():
            if key == "project_name":
                value = project_name
            elif isinstance(value, str) and not key.startswith("_"):
                value = environment.from_string(value).render(cookiecutter=context)
            context[key] = value
        return context

    def render(self, context: dict[str, Any]) -> dict[Path, bytes]:
        """Render every file of the template: relative path -> content."""
        from jinja2 import Environment, StrictUndefined

        environment = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
        verbatim = context.get("_copy_without_render", [])
        (project_dir,) = [p for p in self.path.iterdir() if p.is_dir()]
        files: dict[Path, bytes] = {}
        for source in sorted(project_dir.rglob("*")):
            if source.is_dir() or "__pycache__" in source.parts:
                continue
            relative = source.relative_to(project_dir)
            target = Path(
                environment.from_string(str(relative)).render(cookiecutter=context)
            )
            content = source.read_bytes()
            if not any(fnmatch.fnmatch(str(relative), p) for p in verbatim):
                text = environment.from_string(content.decode("utf-8"))
                content = text.render(cookiecutter=context).encode("utf-8")
            files[target] = content
        return files


def find_scaffolds() -> dict[str, Scaffold]:
    """The available scaffolds, by name."""
    root = scaffolds_root()
    return {
        path.name: Scaffold(path)
        for path in sorted(root.iterdir())
        if (path / "cookiecutter.json").is_file()
    }


def check_project_name(project_name: str, package_name: str, target: Path) -> None:
    """Refuse names that cannot make an importable, unambiguous package."""
    if not project_name or project_name.startswith((".", "-")):
        raise PcreateError(f"{project_name!r} is not a usable project name.")
    if not package_name.isidentifier() or keyword.iskeyword(package_name):
        raise PcreateError(
            f"Project name {project_name!r} gives the package name "
            f"{package_name!r}, which is not a valid Python identifier. Use "
            "letters, digits and underscores, starting with a letter."
        )
    spec = importlib.util.find_spec(package_name)
    # A bare folder (a namespace package, such as the target itself when run
    # from its parent) clashes with nothing, nor does the project itself
    # (already installed, being made again with --overwrite).
    origin = None if spec is None else spec.origin
    if origin not in (None, "namespace") and not Path(origin).is_relative_to(target):
        raise PcreateError(
            f"A module named {package_name!r} can already be imported here, so "
            "the new package would clash with it. Choose another project name."
        )


def _package_name(project_name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]", "_", project_name).lower()


def make_project(
    scaffold: Scaffold,
    target: Path,
    *,
    simulate: bool = False,
    overwrite: bool = False,
    ask: Callable[[str], bool] | None = None,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Render ``scaffold`` into ``target``; return the files written (or to write).

    Without ``overwrite`` or ``ask``, an existing non-empty ``target`` is an
    error and nothing is written; with them, an existing file that differs is
    replaced if ``overwrite``, or if ``ask`` says yes for it.
    """
    context = scaffold.context(target.name)
    check_project_name(target.name, context.get("package_name", target.name), target)
    files = scaffold.render(context)
    occupied = target.exists() and (not target.is_dir() or any(target.iterdir()))
    if occupied and not overwrite and ask is None:
        raise PcreateError(
            f"{target} already exists. Choose a new project name, or pass "
            "--overwrite (replace the scaffold's files there) or --interactive "
            "(ask before replacing each)."
        )
    written = []
    for path, content in files.items():
        destination = target / path
        if destination.exists():
            if destination.read_bytes() == content:
                say(f"  unchanged {destination}")
                continue
            if not overwrite and not (ask and ask(f"Overwrite {destination}?")):
                say(f"  skipped   {destination}")
                continue
        say(f"  {'would write' if simulate else 'writing'} {destination}")
        written.append(destination)
        if not simulate:
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(content)
    return written


def _ask_on_terminal(question: str) -> bool:
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def next_steps(project: str) -> str:
    """What to type next: install and serve the project from this virtualenv.

    The commands name the environment ``pcreate`` runs from, which already
    holds this aiopyramid (a bare ``pip`` could be another Python's, and
    the package index only has the old 0.4).
    """
    bin_dir = Path(sys.executable).parent
    folder = shlex.quote(project)
    return (
        f"Made {Path(project).name}. Next:\n"
        f"  {shlex.quote(str(bin_dir / 'pip'))} install -e {folder}\n"
        f"  cd {folder} && {shlex.quote(str(bin_dir / 'pserve'))} development.ini\n"
        f"Its README.rst has every step, and what a database needs first."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pcreate`` command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="pcreate", description="Make a new project from an aiopyramid scaffold."
    )
    parser.add_argument("-s", "--scaffold", action="append", default=[])
    parser.add_argument("-l", "--list", action="store_true", help="list scaffolds")
    parser.add_argument("--simulate", action="store_true", help="write nothing")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--interactive", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("project", nargs="?")
    args = parser.parse_args(argv)

    scaffolds = find_scaffolds()
    if args.list:
        print("Available scaffolds:")
        for scaffold in scaffolds.values():
            print(f"  {scaffold.name:<16}{scaffold.description}")
        return 0
    if not args.scaffold or not args.project:
        parser.print_usage(sys.stderr)
        print(
            "pcreate: give a scaffold and a project name, e.g. "
            "`pcreate -s aio_starter MyProject` (`pcreate -l` lists scaffolds).",
            file=sys.stderr,
        )
        return 2
    unknown = [name for name in args.scaffold if name not in scaffolds]
    if unknown:
        print(
            f"pcreate: no scaffold named {unknown[0]!r}; "
            f"choose one of: {', '.join(scaffolds)}.",
            file=sys.stderr,
        )
        return 2

    target = Path(args.project).resolve()
    say = (lambda message: None) if args.quiet else print
    try:
        for name in args.scaffold:
            make_project(
                scaffolds[name],
                target,
                simulate=args.simulate,
                overwrite=args.overwrite,
                ask=_ask_on_terminal if args.interactive else None,
                say=say,
            )
    except PcreateError as error:
        print(f"pcreate: {error}", file=sys.stderr)
        return 1
    if not args.simulate:
        say(next_steps(args.project))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
