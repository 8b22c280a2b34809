"""Fan-out through a broadcast: one publisher, many websocket subscribers.

Run: ``python -m bench.broadcast [--subscribers 1000] [--seconds 10]`` from
the repository (needs ``redis-server``, ``pip install aiopyramid[gunicorn,redis]
websockets``; the peers need ``starlette broadcaster`` and ``channels
channels-redis``, and are skipped, saying so, when missing).  For each server:

* aiopyramid, Redis: gunicorn with ``AsyncGunicornWorker``, 4 workers,
  ``aiopyramid.broadcast.url = redis://...``, a function websocket view that
  relays the channel to each subscriber;
* aiopyramid, memory: the same on one worker with ``memory://``;
* Starlette + broadcaster (Redis backend) on uvicorn, 4 workers;
* Django Channels + channels_redis (``RedisChannelLayer`` groups) on uvicorn,
  4 workers.

The subscribers connect to ``/sub`` and are spread over the workers by the
kernel; one publisher connects to ``/pub`` and sends ``--rate`` messages a
second, each carrying the time it was sent, which the server publishes to
the channel.  Measured: messages delivered per second (all subscribers
together), lost messages, p50/p99 latency from publish to receipt (one clock:
publisher and subscribers are this process), and the server's CPU seconds
(all its processes) per second of the run.  Loopback only, bounded in time.

Last run (2 shared cores; the client, 1,000 websockets in this one process on
uvloop, shares them with the servers and is part of every latency)::

    1000 subscribers, 10 messages/s, 10 s
    | server                     | delivered/s | lost | p50 ms | p99 ms | CPU % |
    | aiopyramid, redis (4)      | 10000       | 0    | 38.8   | 56.6   | 52    |
    | aiopyramid, memory (1)     | 9995        | 0    | 28.4   | 109.5  | 49    |
    | starlette+broadcaster (4)  | 9997        | 0    | 48.4   | 110.5  | 51    |
    | channels_redis (4)         | 10000       | 0    | 2849   | 8096   | 274   |

An earlier run with the client on plain asyncio gave aiopyramid on Redis
p50 60 ms, p99 94 ms.  The issue's p99 target (50 ms) is missed on this
machine; the throughput target is met but says little here, as every server
that lost nothing delivered the whole offered load.  broadcaster 0.3.1
delivers nothing with redis 8 unless worked around (see ``starlette_app``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

CHANNEL = "bench"

# --- the servers' applications --------------------------------------------


def aiopyramid_app():  # gunicorn "bench.broadcast:aiopyramid_app()"
    from pyramid.config import Configurator

    from aiopyramid.broadcast import get_broadcast
    from aiopyramid.websocket.config import WebsocketMapper

    async def sub(ws):
        async with get_broadcast().relay(CHANNEL, ws):
            while await ws.recv() is not None:
                pass

    async def pub(ws):
        broadcast = get_broadcast()
        while (message := await ws.recv()) is not None:
            await broadcast.publish(CHANNEL, message)

    settings = {
        "aiopyramid.broadcast.url": os.environ["BENCH_BROADCAST_URL"],
        "aiopyramid.broadcast.queue_size": "1000",
    }
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        config.add_route("sub", "/sub")
        config.add_route("pub", "/pub")
        config.add_view(sub, route_name="sub", mapper=WebsocketMapper)
        config.add_view(pub, route_name="pub", mapper=WebsocketMapper)
    return config.make_wsgi_app()


def starlette_app():  # uvicorn --factory bench.broadcast:starlette_app
    from broadcaster import Broadcast
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    broadcast = Broadcast(os.environ["BENCH_BROADCAST_URL"])

    async def sub(websocket):
        await websocket.accept()
        async with broadcast.subscribe(channel=CHANNEL) as subscriber:

            async def forward():
                async for event in subscriber:
                    await websocket.send_text(event.message)

            task = asyncio.ensure_future(forward())
            with contextlib.suppress(Exception):
                while True:
                    await websocket.receive_text()
            task.cancel()

    async def pub(websocket):
        await websocket.accept()
        with contextlib.suppress(Exception):
            while True:
                await broadcast.publish(CHANNEL, await websocket.receive_text())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await broadcast.connect()
        # broadcaster 0.3.1 with redis 8: the backend wakes its listener
        # before SUBSCRIBE is sent, the listener finds nothing subscribed and
        # sleeps for good, so nothing is ever delivered.  Workaround: keep
        # one subscription for the worker's lifetime, then wake it again.
        async with broadcast.subscribe(channel=CHANNEL):
            await asyncio.sleep(0.2)
            broadcast._backend._ready.set()
            yield
        await broadcast.disconnect()

    return Starlette(
        routes=[WebSocketRoute("/sub", sub), WebSocketRoute("/pub", pub)],
        lifespan=lifespan,
    )


def channels_app():  # uvicorn --factory bench.broadcast:channels_app
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [os.environ["BENCH_BROADCAST_URL"]],
                    "capacity": 1000,
                },
            }
        },
    )
    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import URLRouter
    from django.urls import path

    class Sub(AsyncWebsocketConsumer):
        async def connect(self):
            await self.channel_layer.group_add(CHANNEL, self.channel_name)
            await self.accept()

        async def disconnect(self, code):
            await self.channel_layer.group_discard(CHANNEL, self.channel_name)

        async def bench_message(self, event):
            await self.send(text_data=event["text"])

    class Pub(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.channel_layer.group_send(
                CHANNEL, {"type": "bench.message", "text": text_data}
            )

    return URLRouter([path("sub", Sub.as_asgi()), path("pub", Pub.as_asgi())])


# --- the bench itself -------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children (the workers), in seconds."""
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(p) for p in children]
    ticks = 0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def fan_out(port: int, subscribers: int, rate: float, seconds: float) -> dict:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    received = [0]
    url = f"ws://127.0.0.1:{port}"

    async def subscriber(ready: asyncio.Event, done: asyncio.Event) -> None:
        async with connect(url + "/sub", max_size=None, open_timeout=60) as ws:
            ready.set()
            async for message in ws:
                latencies.append(time.monotonic() - float(message))
                received[0] += 1
                if done.is_set() and received[0] >= expected[0]:
                    break

    expected = [0]
    done = asyncio.Event()
    tasks, readies = [], []
    for n in range(subscribers):
        ready = asyncio.Event()
        readies.append(ready)
        tasks.append(asyncio.ensure_future(subscriber(ready, done)))
        if n % 50 == 49:
            await asyncio.sleep(0.05)  # no SYN flood of the listen backlog
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    await asyncio.sleep(1)  # every server-side subscription is in place
    sent = 0
    async with connect(url + "/pub") as publisher:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await publisher.send(repr(time.monotonic()))
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
        elapsed = time.monotonic() - started
        expected[0] = sent * subscribers
        done.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_until(lambda: received[0] >= expected[0]), 10)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return {
        "delivered/s": received[0] / elapsed,
        "lost": expected[0] - received[0],
        "p50 ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99 ms": 1000 * latencies[int(len(latencies) * 0.99)]
        if latencies
        else float("nan"),
        "elapsed": elapsed,
    }


def run(coroutine):
    """Run the client on uvloop when it is installed: less client overhead."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.05)


def server_command(name: str, port: int) -> list[str]:
    if name.startswith("aiopyramid"):
        workers = "1" if name.endswith("memory") else "4"
        return [
            sys.executable, "-m", "gunicorn", "-k",
            "aiopyramid.gunicorn.worker.AsyncGunicornWorker", "--workers", workers,
            "--bind", f"127.0.0.1:{port}", "--no-control-socket",
            "bench.broadcast:aiopyramid_app()",
        ]  # fmt: skip
    factory = {"starlette+broadcaster": "starlette_app", "channels": "channels_app"}
    return [
        sys.executable, "-m", "uvicorn", "--factory", "--workers", "4",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
        "--ws-max-size", "16777216", f"bench.broadcast:{factory[name]}",
    ]  # fmt: skip


PEERS = {
    "starlette+broadcaster": ("starlette", "broadcaster"),
    "channels": ("channels", "channels_redis", "django"),
}


def main() -> None:
    import importlib.util

    # The harness is imported here, not in the servers importing this module.
    from tests.harness.redis_server import redis_command
    from tests.harness.servers import free_port, running

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--only", nargs="*", help="servers to run (default: all that are installed)"
    )
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is needed: apt-get install redis-server")
    redis_port = free_port()
    names = ["aiopyramid, redis", "aiopyramid, memory", *PEERS]
    rows = []
    with running(redis_command(redis_port), redis_port):
        for name in args.only or names:
            missing = [
                m for m in PEERS.get(name, ()) if not importlib.util.find_spec(m)
            ]
            if missing:
                print(f"{name}: skipped, not installed: {', '.join(missing)}")
                continue
            url = (
                "memory://"
                if name.endswith("memory")
                else f"redis://127.0.0.1:{redis_port}/0"
            )
            port = free_port()
            env = {"BENCH_BROADCAST_URL": url}
            try:
                with running(server_command(name, port), port, env=env) as server:
                    # Every worker booted: they say nothing at this log level.
                    time.sleep(2)
                    cpu = cpu_seconds(server.process.pid)
                    result = run(
                        fan_out(port, args.subscribers, args.rate, args.seconds)
                    )
                    result["cpu %"] = (
                        100
                        * (cpu_seconds(server.process.pid) - cpu)
                        / result["elapsed"]
                    )
                rows.append((name, result))
                print(name, {k: round(v, 1) for k, v in result.items()}, flush=True)
            except Exception as error:  # report the others anyway
                print(f"{name}: failed: {error!r}", flush=True)
    print()
    print(
        f"{args.subscribers} subscribers, {args.rate:g} messages/s, {args.seconds:g} s"
    )
    print("| server | delivered/s | lost | p50 ms | p99 ms | server CPU % |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['delivered/s']:.0f} | {r['lost']} | {r['p50 ms']:.1f} "
            f"| {r['p99 ms']:.1f} | {r['cpu %']:.0f} |"
        )
    if rows:
        print(
            "\nmedian p50 over servers:",
            statistics.median(r["p50 ms"] for _, r in rows),
        )


if __name__ == "__main__":
    main()
