"""The websocket inbox: messages waiting for a view, within a budget."""

from __future__ import annotations

from aiopyramid.websocket._inbox import FEED, HIGH_WATER, Inbox


def test_full_at_sixteen_messages_or_at_the_byte_budget():
    """Either bound fills it; roomy again only well below both."""
    inbox = Inbox(1000)
    inbox.put(["x"] * (HIGH_WATER - 1))
    assert not inbox.full
    inbox.put(["x"])
    assert inbox.full
    bytes_only = Inbox(1000)
    bytes_only.put([b"a" * 999])
    assert not bytes_only.full
    bytes_only.put([b"b"])
    assert bytes_only.full and not bytes_only.roomy
    assert bytes_only.take() == b"a" * 999
    assert bytes_only.roomy and len(bytes_only) == 1


def test_uncompressed_bytes_are_parsed_at_once():
    """Without inflating, a read goes to the parser whole, whatever the inbox holds."""
    inbox = Inbox(10)
    parsed: list[bytes] = []
    assert inbox.feed(b"z" * 100_000, parsed.append, False)
    assert parsed == [b"z" * 100_000]


def test_compressed_bytes_wait_while_the_inbox_is_full():
    """Inflating input is parsed FEED bytes at a time, and waits once full."""
    inbox = Inbox(3 * FEED)

    def parse(data: bytes) -> None:
        inbox.put([data * 2])  # every slice "inflates" to twice its size

    assert not inbox.feed(b"c" * 10 * FEED, parse, True)
    assert len(inbox) == 2 and inbox.backlog == 8 * FEED  # stopped when full
    inbox.take()
    inbox.take()
    assert not inbox.more(parse)  # room for two more slices, then full again
    assert inbox.backlog == 6 * FEED
    inbox.clear()
    assert inbox.backlog == 0 and len(inbox) == 0 and not inbox.full
