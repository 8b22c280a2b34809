"""Greedy websocket clients under uWSGI (issue 22, points 1 and 2).

A real uWSGI (Debian's packages, one worker) serves
``tests.apps.greedy:uwsgi_application`` with ``aiopyramid.send_timeout``
at 1 second.  Messages sent to a view that does not read stop being read
once the connection holds ``aiopyramid.websocket.max_queue_bytes`` of them
(1 MiB by default); a view sending to a client that reads nothing is
stopped at the send deadline.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.harness.servers import UNIT, import_required, wait_until
from tests.harness.slow_clients import MB, WebsocketClient, worker_rss
from tests.harness.uwsgi import UWSGIServer, uwsgi_for_tests

import_required("websockets")

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[UWSGIServer]:
    """uWSGI serving the greedy application; its log is shown if a test failed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIOPYRAMID_TEST_SETTINGS",
            "aiopyramid.send_timeout=1;greedy.sink_seconds=4",
        )
        with uwsgi_for_tests(
            request,
            "tests.apps.greedy:uwsgi_application",
            "uwsgi-budgets.log",
            extra_ini="websockets-ping-freq = 0\n",
        ) as uwsgi:
            yield uwsgi


def ask(server: UWSGIServer, path: str) -> str:
    """The text of a GET answered 200."""
    with urllib.request.urlopen(server.url + path, timeout=10 * UNIT) as answer:
        return answer.read().decode()


def push(client: WebsocketClient, frame: bytes, count: int) -> None:
    """Send ``frame`` ``count`` times, giving up once the server stops reading."""
    client.sock.settimeout(2 * UNIT)
    try:
        for _ in range(count):
            client.sock.sendall(frame)
    except OSError:  # stalled (the server stopped reading), or closed
        pass


def test_unread_messages_stop_being_read_at_the_queue_budget(server):
    """5 connections sending 64 messages of 1 MiB to a view that reads none: +40 MB."""
    pid = int(ask(server, "/pid"))
    before = worker_rss(pid)
    clients = [WebsocketClient(server.port, "/ws/sink") for _ in range(5)]
    try:
        assert all(c.accepted for c in clients)
        frame = clients[0].frame(b"m" * (2**20 - 1))
        senders = [threading.Thread(target=push, args=(c, frame, 64)) for c in clients]
        for sender in senders:
            sender.start()
        held = 0
        for _ in range(20):  # while they push
            held = max(held, worker_rss(pid) - before)
            time.sleep(0.1)
        for sender in senders:
            sender.join(10 * UNIT)
    finally:
        for client in clients:
            client.close()
    # Each connection: its 1 MiB budget, the message that crossed it and
    # one in the parser; 16 messages (16 MiB) each before.
    assert held < 40 * MB, f"+{held / MB:.0f} MB"


def test_a_view_sending_to_a_client_that_reads_nothing_stops_at_the_deadline(server):
    """send() gives up on a client that takes nothing for aiopyramid.send_timeout."""
    client = WebsocketClient(server.port, "/ws/flood")
    try:
        wait_until(lambda: json.loads(ask(server, "/busy"))["floods"] == 1)
        started = time.monotonic()
        wait_until(lambda: json.loads(ask(server, "/busy"))["floods"] == 0, 10)
        ended = time.monotonic() - started
    finally:
        client.close()
    assert ended < 5 * UNIT
