"""Tests of the example asynchronous tween."""

from __future__ import annotations

import asyncio
import logging

from pyramid.response import Response

from tests.harness.inprocess import get, make_app

order = []


def outer_factory(handler, registry):
    def outer(request):
        order.append("outer in")
        response = handler(request)
        order.append("outer out")
        return response

    return outer


def test_logger_tween_logs_without_neighbours_knowing(run, caplog):
    """The tween waits for its coroutines between plain tweens and views."""
    order.clear()

    async def view(request):
        await asyncio.sleep(0)
        order.append("view")
        return Response("ok", status=202)

    def setup(config):
        config.add_tween("aiopyramid.tweens.coroutine_logger_tween_factory")
        config.add_tween(f"{__name__}.outer_factory")
        config.add_view(view, name="v")

    caplog.set_level(logging.INFO, logger="aiopyramid.tweens")
    app = make_app(setup)
    response = run(get(app, "/v?x=1"))
    assert response.status_int == 202
    assert order == ["outer in", "view", "outer out"]
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "GET /v?x=1 started"
    assert messages[1].startswith("GET /v?x=1 answered 202 Accepted in ")
