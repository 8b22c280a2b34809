"""Broadcast rooms under real gunicorn workers, a real Redis and real clients.

The application below is served by ``gunicorn --paste`` with
``AsyncGunicornWorker``, its settings from an ini file as a user's would be,
and by plain uvicorn with several workers.  Each websocket says which worker
holds it, so a test can connect until it has connections on different
workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path

import pytest

from tests.harness.redis_server import RedisServer
from tests.harness.servers import (
    UNIT,
    free_port,
    gunicorn_command,
    import_required,
    running,
    wait_until,
)

pytestmark = pytest.mark.server
import_required("websockets")
import_required("redis")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402


def main(global_config, **settings):
    """The application: a room over websockets, with Redis trouble reported."""
    from pyramid.config import Configurator

    from aiopyramid.broadcast import BroadcastUnavailable, get_broadcast
    from aiopyramid.websocket.config import WebsocketMapper

    async def room(ws):
        broadcast = get_broadcast()
        async with broadcast.relay("room", ws):
            # Subscribed once the relay has started: only now say hello.
            await ws.send(json.dumps({"worker": os.getpid()}))
            while (message := await ws.recv()) is not None:
                try:
                    await broadcast.publish("room", message)
                except BroadcastUnavailable as error:
                    await ws.send(json.dumps({"error": str(error)}))

    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        config.add_route("room", "/room")
        config.add_view(room, route_name="room", mapper=WebsocketMapper)
    return config.make_wsgi_app()


def serve(tmp_path: Path, port: int, workers: int, **settings: str):
    """gunicorn on an ini whose [app:main] has ``settings``."""
    lines = "\n".join(f"aiopyramid.broadcast.{k} = {v}" for k, v in settings.items())
    ini = tmp_path / "app.ini"
    ini.write_text(
        f"[app:main]\nuse = call:tests.test_broadcast_gunicorn:main\n{lines}\n"
    )
    command = gunicorn_command(
        "--paste", str(ini), "--bind", f"127.0.0.1:{port}", "--workers", str(workers)
    )
    return running(command, port)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 90 * UNIT))


async def join(url: str, **options):
    """A connection to the room, and the worker that holds it."""
    ws = await connect(url + "/room", **options)
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10 * UNIT))
    return ws, hello["worker"]


async def on_two_workers(url: str):
    """Connections until two of them are held by different workers."""
    held, spare = {}, []
    for _ in range(100):  # the second worker may still be booting: retry
        ws, worker = await join(url)
        if worker in held:
            spare.append(ws)
            await asyncio.sleep(0.1)
        else:
            held[worker] = ws
        if len(held) == 2:
            break
    for ws in spare:
        await ws.close()
    assert len(held) == 2, "every connection landed on one worker"
    return list(held.values())


async def drain(ws) -> None:
    """Read and drop everything ``ws`` receives until it closes."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def next_text(ws, timeout=10.0) -> str:
    return await asyncio.wait_for(ws.recv(), timeout * UNIT)


async def heard(ws, prefix: str, timeout: float) -> bool:
    """Whether ``ws`` receives a message starting with ``prefix`` in time."""
    try:
        while True:
            if (await next_text(ws, timeout)).startswith(prefix):
                return True
    except asyncio.TimeoutError:
        return False


def test_redis_restart_under_two_workers(tmp_path):
    """Redis stops: websockets stay open and publishing reports the error;
    Redis returns: the room works across workers again, no worker crashed."""
    redis = RedisServer()
    port = free_port()
    try:
        with serve(
            tmp_path, port, 2, url=redis.url, reconnect_max_delay="0.2"
        ) as server:

            async def conversation():
                one, two = await on_two_workers(server.ws_url)
                await one.send("before")
                assert await next_text(one) == "before"
                assert await next_text(two) == "before"

                redis.stop()
                # Both workers notice.
                await asyncio.to_thread(
                    wait_until, lambda: server.log().count("lost Redis at") == 2
                )
                await one.send("during")
                answer = json.loads(await next_text(one))
                assert "cannot be reached" in answer["error"]
                assert "when_unavailable = drop" in answer["error"]
                await asyncio.wait_for(await two.ping(), 5 * UNIT)  # still open

                redis.start()
                # Publish until the other worker's subscription is back.
                for attempt in range(100):
                    await one.send(f"after {attempt}")
                    if await heard(two, "after", 0.2):
                        break
                else:
                    pytest.fail("the room never came back")
                await one.close()
                await two.close()

            run(conversation())
            log = server.log()
    finally:
        redis.stop()
    assert "lost Redis at" in log
    assert "is back; messages published meanwhile were lost" in log
    assert "Traceback" not in log
    assert log.count("Booting worker") == 2  # none died and was replaced


def test_a_client_that_stops_reading_is_closed_and_others_get_everything(tmp_path):
    """overflow=close: the stalled client gets 1013; a reading one misses nothing."""
    port = free_port()
    size, count = 64 * 1024, 200  # far more than the socket buffers hold
    with serve(
        tmp_path, port, 1, queue_size="5", overflow="close", max_size=str(2 * size)
    ) as server:

        async def conversation():
            # A client that stops reading: tiny receive buffer, tiny queue.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            stalled, _ = await join(
                server.ws_url, max_queue=1, sock=sock, compression=None
            )
            reader, _ = await join(server.ws_url, max_size=None)
            publisher, _ = await join(server.ws_url, max_size=None)
            # The publisher is in the room too: it must read what it is sent,
            # or it would be a stalled client itself.
            draining = asyncio.ensure_future(drain(publisher))

            # Each message must reach the reading client before the next is
            # sent: the stalled one, whose buffers fill up, must never delay it.
            for n in range(count):
                await publisher.send(f"#{n} ".ljust(size, "x"))
                message = await next_text(reader)
                while not message.startswith("#"):
                    message = await next_text(reader)
                assert message.startswith(f"#{n} ")
            # Now read what the stalled client was sent: the end is a 1013.
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await next_text(stalled, timeout=30)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
            await reader.close()
            await publisher.close()
            await draining

        run(conversation())
        log = server.log()
    assert log.count("closing a websocket with 1013") == 1, log  # the stalled one


def asgi_app():
    """The same room for any ASGI server, Redis URL from the environment."""
    from aiopyramid.asgi import make_asgi_app

    url = os.environ["AIOPYRAMID_TEST_BROADCAST_URL"]
    return make_asgi_app(main({}, **{"aiopyramid.broadcast.url": url}))


def test_the_room_spans_uvicorn_workers_too():
    """Under plain uvicorn with two worker processes, the room is one room."""
    from tests.harness.servers import python_module

    redis = RedisServer()
    port = free_port()
    command = python_module(
        "uvicorn",
        "--factory",
        "--workers",
        "2",
        "--port",
        str(port),
        "tests.test_broadcast_gunicorn:asgi_app",
    )
    env = {"AIOPYRAMID_TEST_BROADCAST_URL": redis.url}
    try:
        with running(command, port, env=env) as server:

            async def conversation():
                one, two = await on_two_workers(server.ws_url)
                await two.send(b"\x00binary")
                assert await next_text(one) == b"\x00binary"
                assert await next_text(two) == b"\x00binary"
                await one.close()
                await two.close()

            run(conversation())
    finally:
        redis.stop()
