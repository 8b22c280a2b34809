"""The views of {{ cookiecutter.project_name }}."""

import asyncio
import threading
import time

from pyramid.response import Response
from pyramid.view import view_config

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ cookiecutter.project_name }}</title></head>
<body><h1>{{ cookiecutter.project_name }}</h1><p>{message}</p>
<p><a href="/">coroutine view</a> | <a href="/plain">plain view</a></p>
</body></html>
"""


@view_config(route_name="home")
async def home(request):
    """A coroutine view: it awaits on the event loop, which serves others meanwhile."""
    await asyncio.sleep(0.01)  # stands for a database query, an HTTP call...
    return Response(PAGE.format(message="Hello from a coroutine view."))


@view_config(route_name="plain", renderer="json")
def plain(request):
    """A plain view: aiopyramid runs it on a thread, so blocking here is fine."""
    time.sleep(0.01)  # stands for a blocking library call
    return {"view": "plain", "thread": threading.current_thread().name}
