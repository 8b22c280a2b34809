"""Clients that stop reading their responses (issue 22, point 1).

Against ``AsyncGunicornWorker`` on ``tests.apps.greedy``: HTTP/2 streams,
HTTP/1 connections and websockets whose clients read nothing hold neither
every request slot nor unbounded memory, and are ended by the send
deadline (``aiopyramid.send_timeout``).  Memory probes read the worker's
RSS from ``/proc`` and are bounded in time.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from tests.harness.servers import UNIT, import_required, wait_until
from tests.harness.slow_clients import (
    ESTABLISHED,
    MB,
    UnreadH2,
    greedy_worker,
    raise_fd_limit,
    tcp_state,
    unread_http1,
)

pytestmark = pytest.mark.server
import_required("h2")
import_required("websockets")


def served_quickly(worker, path: str = "/hello", seconds: float = 2) -> float:
    """GET ``path``: 200 (not 503) in under ``seconds``; how long it took."""
    started = time.monotonic()
    worker.get(path)
    took = time.monotonic() - started
    assert took < seconds * UNIT, f"{path} took {took:.2f} s"
    return took


def unread_http2_round(worker) -> list[UnreadH2]:
    """11 connections of 100 unread ``/stream`` streams, all under way."""
    attackers = []
    for _ in range(11):
        attacker = UnreadH2(worker)
        for _ in range(100):
            attacker.request("/stream?n=200")
        attacker.flush()
        attackers.append(attacker)
    wait_until(lambda: worker.busy()["streams"] == 1100, 15)
    return attackers


def close_all(worker, attackers: list[UnreadH2]) -> None:
    """Close the attackers' connections; wait until their streams are given up."""
    for attacker in attackers:
        attacker.close()
    wait_until(lambda: worker.busy()["streams"] == 0, 10)


def test_unread_http2_streams_leave_others_served_and_memory_bounded(tmp_path):
    """11 connections of 100 unread streams: no 503, RSS +200 MB at most, +50 after.

    The attack runs twice.  The first round pays what a worker pays once
    (its greenlet pool filled, the allocator's high-water mark, coverage's
    records of each greenlet under ``coverage run``) and is held to +200 MB
    over the fresh worker; memory that closed connections leave is then
    measured against the worker after that round: the second round must
    give back, within 10 s of its close, all but 50 MB of what it took.
    A leak shows as growth from round to round, whatever the allocator keeps.
    """
    with greedy_worker(tmp_path, tls=True) as worker:
        fresh = worker.rss()
        attackers = unread_http2_round(worker)
        try:
            for _ in range(10):  # other clients, while all 1100 stay stuck
                served_quickly(worker)
            held = worker.rss() - fresh
            assert worker.busy()["streams"] == 1100
        finally:
            close_all(worker, attackers)
        warm = worker.rss()
        close_all(worker, unread_http2_round(worker))
        wait_until(lambda: worker.rss() - warm < 50 * MB, 10)
        again = worker.rss() - fresh
    assert held < 200 * MB, f"+{held / MB:.0f} MB"
    assert again < 200 * MB, f"+{again / MB:.0f} MB after two rounds"


def test_an_unread_http2_stream_is_reset_at_the_send_deadline(tmp_path):
    """An unread stream is reset after aiopyramid.send_timeout; its connection lives."""
    with greedy_worker(tmp_path, {"aiopyramid.send_timeout": "1"}, tls=True) as worker:
        client = UnreadH2(worker, small_buffer=False)
        stuck = client.request("/stream?n=50")
        client.flush()
        wait_until(lambda: worker.busy()["streams"] == 1)
        started = time.monotonic()
        wait_until(lambda: worker.busy()["streams"] == 0, 10)
        ended = time.monotonic() - started
        events = client.read_events(1)  # the client reads, at last
        hello = client.request("/hello")  # the same connection goes on
        client.flush()
        answers = client.read_events(2)
        client.close()
    h2_events = import_required("h2.events")
    resets = [e.stream_id for e in events if isinstance(e, h2_events.StreamReset)]
    data = b"".join(
        e.data
        for e in answers
        if isinstance(e, h2_events.DataReceived) and e.stream_id == hello
    )
    assert resets == [stuck]
    assert data == b"hello"
    assert ended < 5 * UNIT


def test_unread_http1_responses_hold_no_slot_and_are_cut_at_the_deadline(tmp_path):
    """1,000 unread 200 MB bodies on 100 slots: all served, others too, all cut."""
    raise_fd_limit(4096)
    settings = {"aiopyramid.send_timeout": "2"}
    args = ("--worker-connections", "100")
    with greedy_worker(tmp_path, settings, *args) as worker:
        before = worker.rss()
        clients: list = []
        stuck = held = 0
        try:
            # In batches of 50 (well within the 100 slots), each stuck before
            # the next comes: the slots are all the stuck ones could hold.
            while len(clients) < 1000:
                clients += [
                    unread_http1(worker.port, "/stream?n=200") for _ in range(50)
                ]
                opened = len(clients)
                wait_until(lambda n=opened: worker.busy()["started"] == n, 10)
                served_quickly(worker)  # never a 503, never slow
                stuck = max(stuck, worker.busy()["streams"])
                held = max(held, worker.rss() - before)
            wait_until(lambda: worker.busy()["streams"] == 0, 10)
            wait_until(lambda: all(tcp_state(c) != ESTABLISHED for c in clients))
        finally:
            for client in clients:
                client.close()
    assert stuck > 100  # more at once than there are slots
    assert held < 100 * MB, f"+{held / MB:.0f} MB"


def test_an_unread_websocket_is_cut_at_the_send_deadline(tmp_path):
    """A websocket client that reads nothing of what its view sends is cut off."""
    from tests.harness.raw_websocket import RawClient

    settings = {"aiopyramid.send_timeout": "1"}
    with greedy_worker(tmp_path, settings) as worker:
        client = RawClient(worker.process, "/ws/flood")
        with contextlib.closing(client.sock):
            wait_until(lambda: worker.busy()["floods"] == 1)
            started = time.monotonic()
            wait_until(lambda: worker.busy()["floods"] == 0, 10)
            ended = time.monotonic() - started
            wait_until(lambda: tcp_state(client.sock) != ESTABLISHED)
    assert ended < 5 * UNIT
