"""The broadcast under uWSGI's asyncio plugin (Debian's packages).

uWSGI runs the application in its own greenlets on its own loop; the
broadcast's hub lives on that loop like on any other.  A coroutine view waits
on a subscription (a long poll) while other requests publish, from a
coroutine view and from a plain view through ``synchronize``; with the
``memory://`` backend and through a real ``redis-server``.
"""

from __future__ import annotations

import textwrap
import threading
import urllib.request

import pytest

from tests.harness.redis_server import RedisServer
from tests.harness.servers import UNIT, wait_until
from tests.harness.uwsgi import UWSGIServer, uwsgi_for_tests

pytestmark = pytest.mark.server

APP = '''
import asyncio

from pyramid.config import Configurator
from pyramid.response import Response

from aiopyramid.broadcast import get_broadcast
from aiopyramid.helpers import synchronize


async def wait(request):
    """Answer with the first message published on "news"."""
    async with request.broadcast.subscribe("news") as news:
        return Response(await asyncio.wait_for(news.__anext__(), 20))


async def say(request):
    await request.broadcast.publish("news", "from a coroutine view")
    return Response("said")


def say_plain(request):
    synchronize(get_broadcast().publish)("news", "from a plain view")
    return Response("said")


with Configurator(settings={"aiopyramid.broadcast.url": BROADCAST_URL}) as config:
    config.include("aiopyramid")
    for name, view in [("wait", wait), ("say", say), ("say_plain", say_plain)]:
        config.add_route(name, "/" + name)
        config.add_view(view, route_name=name)
application = config.make_wsgi_app()
'''


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, tmp_path_factory: pytest.TempPathFactory):
    """uWSGI serving the application above, on each backend."""
    redis = RedisServer() if request.param == "redis" else None
    url = redis.url if redis else "memory://"
    where = tmp_path_factory.mktemp("uwsgi_broadcast")
    source = f"BROADCAST_URL = {url!r}\n" + textwrap.dedent(APP)
    (where / "broadcast_uwsgi_app.py").write_text(source)
    try:
        with uwsgi_for_tests(
            request,
            "broadcast_uwsgi_app:application",
            f"uwsgi-broadcast-{request.param}.log",
            extra_ini=f"pythonpath = {where}\n",
        ) as uwsgi:
            yield uwsgi
    finally:
        if redis is not None:
            redis.stop()


def fetch(url: str) -> str:
    """GET ``url``: its body."""
    with urllib.request.urlopen(url, timeout=30 * UNIT) as response:
        return response.read().decode()


def long_poll_sees(server: UWSGIServer, say: str) -> str:
    """Wait on /wait in a thread while ``say`` publishes until it answers."""
    answer: list[str] = []
    waiter = threading.Thread(target=lambda: answer.append(fetch(server.url + "/wait")))
    waiter.start()

    def answered() -> bool:
        assert fetch(server.url + say) == "said"
        waiter.join(0.1)
        return not waiter.is_alive()

    wait_until(answered, 15)
    waiter.join(20 * UNIT)
    assert answer, server.log()[-3000:]
    return answer[0]


def test_a_coroutine_view_publishes_to_a_waiting_request(server):
    """A publish from a coroutine view reaches a request waiting on the channel."""
    assert long_poll_sees(server, "/say") == "from a coroutine view"


def test_a_plain_view_publishes_through_synchronize(server):
    """A plain view on a pool thread publishes with synchronize()."""
    assert long_poll_sees(server, "/say_plain") == "from a plain view"
