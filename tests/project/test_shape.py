"""The package's shape: errors share one base, no module is too long, one version."""

from __future__ import annotations

import importlib

import greenlet
import pytest

from aiopyramid.exceptions import AiopyramidError
from tests.harness.servers import ROOT

PACKAGE = ROOT / "aiopyramid"

#: Longest module allowed, in lines (the issue's limit: a newcomer reads a
#: module whole).
MAX_LINES = 400


@pytest.mark.parametrize(
    ("module", "name", "former_base"),
    [
        ("aiopyramid._environ", "LimitExceeded", "aiopyramid._environ.BadRequest"),
        ("aiopyramid._wsgi_input", "BodyTooLarge", "builtins.Exception"),
        ("aiopyramid.pcreate", "PcreateError", "builtins.Exception"),
        ("aiopyramid.websocket.exceptions", "WebsocketClosed", "greenlet.GreenletExit"),
    ],
)
def test_errors_are_aiopyramid_errors(module, name, former_base):
    """Each error is an AiopyramidError, and still caught as it was before."""
    error_class = getattr(importlib.import_module(module), name)
    base_module, _, base_name = former_base.rpartition(".")
    base = getattr(importlib.import_module(base_module), base_name)
    assert issubclass(error_class, AiopyramidError)
    with pytest.raises(AiopyramidError):
        raise error_class("too much")
    with pytest.raises(base):
        raise error_class("too much")


def test_websocket_closed_still_ends_a_greenlet_quietly():
    """WebsocketClosed stays a GreenletExit: a greenlet dying of it returns."""
    from aiopyramid.websocket.exceptions import WebsocketClosed

    def closed():
        raise WebsocketClosed("closed")

    result = greenlet.greenlet(closed).switch()
    assert isinstance(result, WebsocketClosed)


def module_lines() -> dict[str, int]:
    return {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_is_over_400_lines():
    """Every module of the package fits in 400 lines, blank ones included."""
    lines = module_lines()
    assert len(lines) > 30  # the package was found
    assert {path: n for path, n in lines.items() if n > MAX_LINES} == {}


def test_the_version_is_stated_once():
    """setup.py and the docs take the package's __version__; none repeats it."""
    import importlib.metadata
    import subprocess
    import sys

    import aiopyramid

    version = aiopyramid.__version__
    assert importlib.metadata.version("aiopyramid") == version
    built = subprocess.run(
        [sys.executable, "setup.py", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert built.stdout.split()[-1] == version
    for path in ("setup.py", "docs/conf.py"):
        assert version not in (ROOT / path).read_text(encoding="utf-8"), path


def test_the_http_response_has_no_websocket_fields():
    """Only the websocket half's Denial knows about the ws object."""
    from aiopyramid._asgi_response import Response
    from aiopyramid._asgi_websocket import Denial

    assert "ws" not in Response.__slots__
    assert (Response.START, Response.BODY) == (
        "http.response.start",
        "http.response.body",
    )
    assert issubclass(Denial, Response)
    assert Denial.START == "websocket.http.response.start"
