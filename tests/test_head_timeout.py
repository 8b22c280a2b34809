"""The worker's request head timeout, on uvicorn's two HTTP protocols, in process."""

from __future__ import annotations

import asyncio
import time

import pytest

from .servers import free_port, require_module


async def app(scope, receive, send):
    """A tiny ASGI application answering every request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_slow_heads_are_dropped_and_prompt_ones_served(http):
    """An unfinished head is dropped after the timeout; prompt ones are served."""
    require_module("uvicorn")
    require_module(http)
    import uvicorn

    from aiopyramid.gunicorn.worker import _with_head_timeout

    port = free_port()
    protocol = _with_head_timeout(http, 0.3)
    assert protocol.__name__.endswith("WithHeadTimeout")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)

    async def main() -> tuple[float, list[bytes]]:
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            dropped_after = time.monotonic() - started
            writer.close()
            answers = []
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(2):  # the timer restarts after each response
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                answers.append(await reader.readuntil(b"ok\r\n0\r\n\r\n"))
                await asyncio.sleep(0.2)
            writer.close()
            return dropped_after, answers
        finally:
            server.should_exit = True
            await serving

    dropped_after, answers = asyncio.run(main())
    assert 0.2 < dropped_after < 2
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [
        b"HTTP/1.1 200 OK"
    ] * 2, answers
