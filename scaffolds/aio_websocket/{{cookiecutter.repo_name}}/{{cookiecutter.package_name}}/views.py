"""The views of {{ cookiecutter.project_name }}: a page and its websocket room.

Every message typed on the page reaches every open page, whichever worker
process serves it: the room goes through ``request.broadcast``, which is
memory inside one process (development.ini) or Redis across workers and
machines (production.ini).
"""

import asyncio
import json
import logging
import os
import threading

from pyramid.view import view_config

from aiopyramid.broadcast import BroadcastUnavailable, MessageTooLarge
from aiopyramid.websocket.config import WebsocketMapper
from aiopyramid.websocket.view import WebsocketConnectionView

log = logging.getLogger(__name__)

ROOM = "demo:room"  # what people say
PEOPLE = "demo:people"  # how many people each worker serves
HEARTBEAT = 2  # seconds between two "still here" counts of a worker

# This worker's connections, shared by the websocket callbacks (on the loop)
# and the plain stats view (on a pool thread): guarded by a lock, as any
# state shared with threads.
_here = {"people": 0, "heartbeat": None}
_here_lock = threading.Lock()


def _count(change):
    with _here_lock:
        _here["people"] += change
        return _here["people"]


async def tell_people(broadcast):
    """Publish this worker's count; pages add up the counts of all workers."""
    count = json.dumps({"worker": os.getpid(), "people": _here["people"]})
    try:
        await broadcast.publish(PEOPLE, count)
    except BroadcastUnavailable as error:
        log.warning("people count not sent: %s", error)


async def heartbeat(broadcast):
    """Repeat the count while anyone is here, so new pages learn it too."""
    while _here["people"]:
        await asyncio.sleep(HEARTBEAT)
        await tell_people(broadcast)
    _here["heartbeat"] = None


@view_config(route_name="home", renderer="templates/index.jinja2")
async def home(request):
    """The page, from a coroutine view; its script joins the room."""
    await asyncio.sleep(0)
    return {"project": "{{ cookiecutter.project_name }}", "worker": os.getpid()}


@view_config(route_name="stats", renderer="json")
def stats(request):
    """A plain view: aiopyramid runs it on a thread, so blocking here is fine."""
    with _here_lock:
        return {"worker": os.getpid(), "open_connections": _here["people"]}


@view_config(route_name="room", mapper=WebsocketMapper)
class Room(WebsocketConnectionView):
    """One person in the room: what they send goes to everyone."""

    async def on_open(self):
        broadcast = self.request.broadcast
        log.info("websocket opened")
        await self.send(json.dumps({"you": os.getpid()}))
        # Relays forward both channels to this connection, in tasks of their
        # own, while on_message handles what the person sends.
        self.relays = [
            await broadcast.relay(ROOM, self.ws).start(),
            await broadcast.relay(PEOPLE, self.ws).start(),
        ]
        _count(+1)
        await tell_people(broadcast)
        if _here["heartbeat"] is None:
            _here["heartbeat"] = asyncio.ensure_future(heartbeat(broadcast))

    async def on_message(self, message):
        if isinstance(message, str):  # text: say who said it, as JSON
            message = json.dumps({"text": message, "worker": os.getpid()})
        try:
            await self.request.broadcast.publish(ROOM, message)  # bytes as they are
        except (BroadcastUnavailable, MessageTooLarge) as error:
            await self.send(json.dumps({"error": str(error)}))

    async def on_close(self):
        for relay in getattr(self, "relays", ()):
            await relay.stop()
        _count(-1)
        await tell_people(self.request.broadcast)
        log.info("websocket closed")
