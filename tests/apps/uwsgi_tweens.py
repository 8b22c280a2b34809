"""A tween for the uWSGI test application (a module of its own, for add_tween)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiopyramid.helpers import synchronize


@synchronize
async def _stamp() -> str:
    await asyncio.sleep(0.01)
    return "waited"


def stamping_tween_factory(handler: Any, registry: Any) -> Any:
    """A tween that waits for a coroutine before and after the view."""

    def stamping_tween(request: Any) -> Any:
        before = _stamp()
        response = handler(request)
        response.headers["X-Tween"] = f"{before}/{_stamp()}"
        return response

    return stamping_tween
