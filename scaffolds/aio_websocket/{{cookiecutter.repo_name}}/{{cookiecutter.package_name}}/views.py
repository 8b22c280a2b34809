"""The views of {{ cookiecutter.project_name }}: a page and its websocket."""

import asyncio
import logging
import threading

from pyramid.view import view_config

from aiopyramid.websocket.config import WebsocketMapper
from aiopyramid.websocket.view import WebsocketConnectionView

log = logging.getLogger(__name__)

# Shared by the websocket callbacks (on the loop) and the plain stats view
# (on a pool thread): guarded by a lock, as any state shared with threads.
_open = {"connections": 0}
_open_lock = threading.Lock()


def _count(change):
    with _open_lock:
        _open["connections"] += change


@view_config(route_name="home", renderer="templates/index.jinja2")
async def home(request):
    """The page; its script opens the websocket."""
    await asyncio.sleep(0)
    return {"project": "{{ cookiecutter.project_name }}"}


@view_config(route_name="stats", renderer="json")
def stats(request):
    """A plain view: aiopyramid runs it on a thread, so blocking here is fine."""
    with _open_lock:
        return {"open_connections": _open["connections"]}


@view_config(route_name="echo", mapper=WebsocketMapper)
class EchoWebsocket(WebsocketConnectionView):
    """Send every message back, prefixed, to the client that sent it."""

    async def on_open(self):
        _count(+1)
        log.info("websocket opened")
        await self.send("connected")

    async def on_message(self, message):
        await self.send(f"echo: {message}")

    def on_close(self):
        _count(-1)
        log.info("websocket closed")
