"""Headless Chromium (Debian's package) driven by Playwright, for page tests.

:func:`chromium` starts a browser or, where it is missing, skips the test
(fails under ``CI=true``).  The room helpers drive the ``aio_websocket``
scaffold's page.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

from tests.harness.servers import ARTIFACTS, UNIT, require, require_module

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Chromium's flags for a closed network, as root, without a screen.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser, closed afterwards."""
    require_module("playwright")
    require(
        os.path.exists(CHROMIUM), "Chromium is not installed (apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_room(browser: Any, url: str, not_found: list[str]) -> Any:
    """A page in the demo's room, connected; 404s it meets go to ``not_found``."""
    page = browser.new_page()
    page.on(
        "response",
        lambda response: response.status == 404 and not_found.append(response.url),
    )
    page.goto(url + "/")
    page.wait_for_selector("#status:text('connected')", timeout=10_000 * UNIT)
    page.wait_for_function(
        "document.getElementById('worker').textContent !== '…'", timeout=10_000 * UNIT
    )
    return page


def say(page: Any, text: str, *, as_bytes: bool = False) -> None:
    """Type ``text`` in the room's box and send it (as bytes if asked)."""
    page.fill("#message", text)
    page.click("#send-bytes" if as_bytes else "#send")


def wait_people(page: Any, count: int) -> None:
    """Wait until the page counts ``count`` people in the room."""
    text = f"{count} people here"
    page.wait_for_selector(f"#people:text('{text}')", timeout=15_000 * UNIT)
