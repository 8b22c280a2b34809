"""The worker's access log writes exactly the lines gunicorn's own would.

:class:`aiopyramid.gunicorn._access.AccessLog` formats lines itself (only the
atoms a format names, the date once a second, lines written per turn of the
loop).  Each line is compared with what gunicorn's ``Logger.access`` writes
for the same request and response, through real gunicorn loggers writing
to real files.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

glogging = pytest.importorskip("gunicorn.glogging")
from gunicorn.config import Config  # noqa: E402

from aiopyramid.gunicorn._access import AccessLog, Logged, _clock  # noqa: E402

FORMATS = [
    Config().access_log_format,  # gunicorn's default: the combined format
    "%(h)s %(l)s %(u)s %(t)s %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s",
    '%(r)s "%({user-agent}i)s" %({X-Missing}i)s %({content-type}o)s '
    "%({path_info}e)s %(p)s %(nonsense)s",
    "%(T)s %(D)s %(M)s %(L)s",
]


class Request:
    """What the access log reads of a parsed request: its str headers."""

    headers = [
        ("HOST", "example.com"),
        ("USER-AGENT", 'curl "quoted"'),
        ("REFERER", "http://r/"),
    ]


def environ() -> dict[str, object]:
    user = base64.b64encode(b"alice:secret").decode()
    return {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/a%20b?x=1",
        "PATH_INFO": "/a b",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": 'curl "quoted"',
        "HTTP_REFERER": "http://r/",
        "HTTP_AUTHORIZATION": f"Basic {user}",
    }


def logger(path: Path, fmt: str) -> object:
    """gunicorn's logger writing its access log to ``path``, as in a worker.

    pytest's log capture hangs handlers of its own on loggers that do not
    propagate; a worker has none of them, so they go.
    """
    cfg = Config()
    cfg.set("accesslog", str(path))
    cfg.set("access_log_format", fmt)
    log = glogging.Logger(cfg)
    access = log.access_log
    access.handlers = [h for h in access.handlers if isinstance(h, logging.FileHandler)]
    return log


@pytest.mark.parametrize("fmt", FORMATS)
def test_lines_are_gunicorns_own(tmp_path: Path, fmt: str) -> None:
    response = Logged("201 Created", [("Content-Type", "text/plain")], 1234)
    seconds = 1.234567
    theirs = tmp_path / "gunicorn.log"
    logger(theirs, fmt).access(
        response, Request(), environ(), timedelta(seconds=seconds)
    )
    ours = tmp_path / "ours.log"
    gunicorn_log = logger(ours, fmt)
    access = AccessLog(gunicorn_log, gunicorn_log.cfg)
    assert access.streams is not None  # the fast way is taken

    async def write() -> None:
        access.write(response, Request(), environ(), seconds)
        access.write(response, Request(), environ(), seconds)
        assert ours.read_text() == ""  # kept, to be written together
        await asyncio.sleep(access.flush_after * 2)

    asyncio.run(write())
    expected = without_date(theirs.read_text())
    assert without_date(ours.read_text()) == expected * 2
    assert "%(" not in expected


def without_date(text: str) -> str:
    """``text`` with the dates (``%(t)s``) replaced, checked by their own test."""
    return DATE.sub("[date]", text)


DATE = re.compile(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")


def test_the_date_is_gunicorns(tmp_path: Path) -> None:
    """Both read the same second, unless a second ends between the two reads.

    gunicorn's ``strftime`` reads the system's coarse clock, which may still
    show the last second a few milliseconds after ``time.time()`` has moved
    on: a read that straddles a second is taken again, a little later.
    """
    gunicorn_log = logger(tmp_path / "access.log", "%(t)s")
    for _ in range(5):
        second = int(time.time())
        ours, theirs = _clock.now(), gunicorn_log.now()
        if ours == theirs and int(time.time()) == second:
            break
        time.sleep(0.02)  # past the boundary and the coarse clock's lag
    assert DATE.fullmatch(ours)
    assert ours == theirs


def test_many_lines_are_written_at_once_and_the_rest_on_flush(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    gunicorn_log = logger(path, "%(s)s %({x-pad}i)s")
    access = AccessLog(gunicorn_log, gunicorn_log.cfg)

    class Padded:
        headers = [("X-PAD", "x" * 1000)]

    async def write() -> None:
        for _ in range(100):  # 100 kB: past flush_size, written at once
            access.write(Logged("200 OK", [], 1), Padded(), environ(), 0.1)
        assert 0 < len(path.read_text().splitlines()) < 100
        access.flush()  # what the worker does when it stops
        assert len(path.read_text().splitlines()) == 100

    asyncio.run(write())


def test_other_logging_setups_go_through_gunicorn(tmp_path: Path) -> None:
    """A handler with its own format gets gunicorn's Logger.access itself."""
    path = tmp_path / "access.log"
    gunicorn_log = logger(path, "%(s)s")
    handler = gunicorn_log.access_log.handlers[0]
    handler.setFormatter(logging.Formatter("custom %(message)s"))
    access = AccessLog(gunicorn_log, gunicorn_log.cfg)
    assert access.streams is None
    access.write(Logged("200 OK", [], 2), Request(), environ(), 0.1)
    assert path.read_text() == "custom 200\n"


def test_no_access_log_no_writer() -> None:
    cfg = Config()
    assert AccessLog.for_worker(glogging.Logger(cfg), cfg) is None
