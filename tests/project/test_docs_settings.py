"""The settings docs/security.rst shows in ini are the ones the code reads, as shown."""

from __future__ import annotations

import configparser
import re

from pyramid.config import Configurator

from aiopyramid import asgi
from aiopyramid.websocket._inbox import DEFAULT_MAX_QUEUE_BYTES
from tests.harness.servers import ROOT, import_required


def ini_blocks(page: str) -> list[str]:
    """The ``code-block:: ini`` blocks of a page of the docs."""
    text = (ROOT / "docs" / page).read_text()
    # The directive in a definition list: its lines are indented by 8.
    blocks = re.findall(r"\.\. code-block:: ini\n\n((?:(?: {8,}.*)?\n)+)", text)
    return [re.sub(r"^ {8}", "", block, flags=re.M) for block in blocks]


def test_the_slow_and_greedy_client_settings_are_the_defaults_they_show():
    """Each value of the ini block is the setting's default, and is read as given."""
    gunicorn_websocket = import_required("aiopyramid.gunicorn._websocket")
    (block,) = [b for b in ini_blocks("security.rst") if "send_timeout" in b]
    parser = configparser.ConfigParser()
    parser.read_string(block)
    settings = dict(parser["app:main"])
    assert settings == {
        "aiopyramid.send_timeout": str(int(asgi.DEFAULT_SEND_TIMEOUT)),
        "aiopyramid.websocket.max_size": str(
            gunicorn_websocket.DEFAULT_WEBSOCKET_MAX_SIZE
        ),
        "aiopyramid.websocket.max_queue_bytes": str(DEFAULT_MAX_QUEUE_BYTES),
        "aiopyramid.websocket.max_connections": str(asgi.DEFAULT_MAX_WEBSOCKETS),
    }
    changed = {name: str(int(value) // 2) for name, value in settings.items()}
    with Configurator(settings=changed) as config:
        config.include("aiopyramid")
    bridge = asgi.make_asgi_app(config.make_wsgi_app())
    assert bridge.send_timeout == asgi.DEFAULT_SEND_TIMEOUT / 2
    assert bridge.max_websockets == asgi.DEFAULT_MAX_WEBSOCKETS // 2
