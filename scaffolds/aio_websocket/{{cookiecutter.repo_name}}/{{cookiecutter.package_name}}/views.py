"""The views of {{ cookiecutter.project_name }}: a page and its websocket."""

import asyncio
import logging

from pyramid.view import view_config

from aiopyramid.websocket.config import WebsocketMapper
from aiopyramid.websocket.view import WebsocketConnectionView

log = logging.getLogger(__name__)


@view_config(route_name="home", renderer="templates/index.jinja2")
async def home(request):
    """The page; its script opens the websocket."""
    await asyncio.sleep(0)
    return {"project": "{{ cookiecutter.project_name }}"}


@view_config(route_name="echo", mapper=WebsocketMapper)
class EchoWebsocket(WebsocketConnectionView):
    """Send every message back, prefixed, to the client that sent it."""

    async def on_open(self):
        log.info("websocket opened")
        await self.send("connected")

    async def on_message(self, message):
        await self.send(f"echo: {message}")

    def on_close(self):
        log.info("websocket closed")
