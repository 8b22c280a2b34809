"""A broadcast room of websocket views, driven in process through the bridge."""

from __future__ import annotations

import asyncio

from aiopyramid.asgi import make_asgi_app
from aiopyramid.broadcast import get_broadcast
from aiopyramid.websocket.config import WebsocketMapper
from tests.harness.inprocess import make_app


def room_app(**settings):
    """Websocket views relaying a room: a function view and a class view."""
    from aiopyramid.websocket.view import WebsocketConnectionView

    async def function_room(ws):
        broadcast = get_broadcast()
        async with broadcast.relay("room", ws):
            await broadcast.publish("room", "joined")
            while (message := await ws.recv()) is not None:
                await broadcast.publish("room", message)
            # Let the relay forward what this connection published itself.
            await asyncio.sleep(0.01)

    class ClassRoom(WebsocketConnectionView):
        relay = None

        async def on_open(self):
            self.relay = self.request.broadcast.relay("room", self.ws)
            await self.relay.start()

        async def on_message(self, message):
            await self.request.broadcast.publish("room", message)

        async def on_close(self):
            # on_close runs even when the client left while on_open waited.
            if self.relay is not None:
                await self.relay.stop()
                await self.relay.stop()  # twice is fine

    def setup(config):
        config.add_route("function", "/function")
        config.add_route("class", "/class")
        config.add_view(function_room, route_name="function", mapper=WebsocketMapper)
        config.add_view(ClassRoom, route_name="class", mapper=WebsocketMapper)

    return make_asgi_app(make_app(setup, **settings))
