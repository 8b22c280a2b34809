"""The echo servers that ``bench/websocket.py`` compares (and Autobahn fuzzes).

* :func:`pyramid_app`: a Pyramid application with one websocket view at
  ``/echo``, for ``gunicorn -k aiopyramid.gunicorn.worker.AsyncGunicornWorker
  'bench.websocket_apps:pyramid_app(deflate=False)'`` (and, with
  ``UWSGIWebsocketMapper``, for uWSGI: ``bench/uwsgi_echo.py``);
* :func:`pyramid_asgi`: the same through :mod:`aiopyramid.asgi`, for
  gunicorn's own ``-k asgi`` worker and its websocket implementation;
* :func:`pyramid_rsgi`: the same through :mod:`aiopyramid.rsgi`, for
  granian's RSGI interface and its websocket framing;
* :func:`asgi_echo`: the echo as a plain ASGI application, to run under
  uvicorn alone and see what uvicorn's websocket protocol costs by itself;
* :class:`RSGIEcho`: the echo as a plain RSGI application, granian's own cost;
* ``python -m bench.websocket_apps --port N [--no-deflate] [--no-uvloop]``:
  the same echo written directly on the ``websockets`` library's asyncio
  server, the reference.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from typing import Any


async def echo(ws: Any) -> None:
    """Send every message back until the client leaves."""
    while (message := await ws.recv()) is not None:
        await ws.send(message)


def pyramid_app(
    deflate: bool = True, max_size: int | None = None, mapper: Any = None
) -> Any:
    """The Pyramid echo application.

    ``deflate`` sets permessage-deflate, ``max_size`` the largest message (in
    bytes), ``mapper`` the view mapper (``WebsocketMapper`` by default).
    """
    from pyramid.config import Configurator

    from aiopyramid.websocket.config import WebsocketMapper

    settings = {
        "aiopyramid.websocket.per_message_deflate": str(deflate).lower(),
        # bench/websocket.py holds thousands open (the default budget is 1000).
        "aiopyramid.websocket.max_connections": "0",
    }
    if max_size is not None:
        settings["aiopyramid.websocket.max_size"] = str(max_size)
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        config.add_route("echo", "/echo")
        config.add_view(echo, route_name="echo", mapper=mapper or WebsocketMapper)
    return config.make_wsgi_app()


def pyramid_asgi() -> Any:
    """The same application through the bridge, for gunicorn's own ``-k asgi``
    (its websocket implementation, to compare with the worker's)."""
    from aiopyramid.asgi import make_asgi_app

    return make_asgi_app(pyramid_app(deflate=False))


def pyramid_rsgi(max_size: int | None = None) -> Any:
    """The same application under granian's RSGI interface (``--factory``),
    framed by granian; messages up to ``max_size`` bytes (1 MiB by default)."""
    from aiopyramid.rsgi import make_rsgi_app

    return make_rsgi_app(pyramid_app(deflate=False, max_size=max_size))


def autobahn_rsgi() -> Any:
    """:func:`pyramid_rsgi` for Autobahn (``--factory``): messages up to
    16 MiB + 1 KiB, for its cases 9.1.6 and 9.2.6."""
    return pyramid_rsgi(max_size=16 * 1024 * 1024 + 1024)


class RSGIEcho:
    """The echo as a bare RSGI application: granian's own cost, without Pyramid."""

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        """Accept a websocket and send every message back until it closes."""
        if scope.proto != "ws":
            protocol.response_empty(404, [])
            return
        transport = await protocol.accept()
        try:
            # Kinds: 0 the client's close, 1 binary, 2 text.
            while (message := await transport.receive()).kind:
                if message.kind == 2:
                    await transport.send_str(message.data)
                else:
                    await transport.send_bytes(message.data)
        except RuntimeError:  # the client vanished
            pass
        protocol.close(1000)


rsgi_echo = RSGIEcho()


async def asgi_echo(scope: Any, receive: Any, send: Any) -> None:
    """The echo as a bare ASGI application: uvicorn's own cost, without Pyramid."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({**message, "type": "websocket.send"})


async def _bare_echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def _serve_bare(port: int, deflate: bool) -> None:
    from websockets.asyncio.server import serve

    compression = "deflate" if deflate else None
    async with serve(_bare_echo, "127.0.0.1", port, compression=compression) as server:
        await server.serve_forever()


def main() -> None:
    """Run the bare ``websockets`` echo server until interrupted."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-deflate", action="store_true")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    use_uvloop = not args.no_uvloop and importlib.util.find_spec("uvloop") is not None
    factory: Any = None
    if use_uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve_bare(args.port, not args.no_deflate))


if __name__ == "__main__":
    main()
