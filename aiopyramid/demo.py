"""A small demonstration application, served by gunicorn with aiopyramid's worker.

Run ``python -m aiopyramid.demo`` (after ``pip install 'aiopyramid[gunicorn]'``)
and open http://127.0.0.1:6543/.  ``--bind HOST:PORT`` serves elsewhere.

* ``/`` is a coroutine view: it awaits ``asyncio.sleep`` on the event loop;
* ``/plain`` is a plain view: it blocks in ``time.sleep`` on a pool thread;
* ``/json`` is a coroutine view rendered by Pyramid's JSON renderer.

Hundreds of requests to ``/`` can wait at once on the one worker, and a slow
``/plain`` never holds them up.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response

__all__ = ["main", "make_app"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>aiopyramid demo</title></head>
<body>
<h1>aiopyramid demo</h1>
<p>{message}</p>
<ul>
<li><a href="/">/</a>: a coroutine view (awaits on the event loop)</li>
<li><a href="/plain">/plain</a>: a plain view (blocks on a pool thread)</li>
<li><a href="/json">/json</a>: a coroutine view rendered as JSON</li>
</ul>
</body></html>
"""


async def coroutine_view(request: Any) -> Response:
    """Wait 50 ms on the loop, then answer."""
    await asyncio.sleep(0.05)
    return Response(PAGE.format(message="Answered by a coroutine view."))


def plain_view(request: Any) -> Response:
    """Block 50 ms on a pool thread, then answer."""
    time.sleep(0.05)
    thread = threading.current_thread().name
    return Response(PAGE.format(message=f"Answered by a plain view on {thread}."))


async def json_view(request: Any) -> dict[str, Any]:
    """Return data for the JSON renderer."""
    await asyncio.sleep(0)
    return {"view": "coroutine", "path": request.path}


def make_app(global_config: Any = None, **settings: Any) -> Any:
    """Build the demonstration WSGI application (also a paste app factory)."""
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        config.add_route("home", "/")
        config.add_view(coroutine_view, route_name="home")
        config.add_route("plain", "/plain")
        config.add_view(plain_view, route_name="plain")
        config.add_route("json", "/json")
        config.add_view(json_view, route_name="json", renderer="json")
    return config.make_wsgi_app()


def main(argv: list[str] | None = None) -> None:
    """Serve the demonstration app with gunicorn and ``AsyncGunicornWorker``."""
    parser = argparse.ArgumentParser(prog="python -m aiopyramid.demo")
    parser.add_argument("--bind", default="127.0.0.1:6543")
    args = parser.parse_args(argv)
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "The demo is served by gunicorn: pip install 'aiopyramid[gunicorn]'"
        ) from None

    class Demo(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", args.bind)
            self.cfg.set("workers", 1)
            self.cfg.set(
                "worker_class", "aiopyramid.gunicorn.worker.AsyncGunicornWorker"
            )
            self.cfg.set("accesslog", "-")

        def load(self) -> Any:
            return make_app()

    print(f"aiopyramid demo on http://{args.bind}/ (Ctrl+C stops it)", flush=True)
    Demo().run()


if __name__ == "__main__":
    main()
