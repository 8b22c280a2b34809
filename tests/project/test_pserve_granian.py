"""``pserve`` with ``use = egg:aiopyramid#granian``: real servers, real clients.

Each test writes an ini file for the serving test application, runs
``pserve`` on it on a free loopback port, and asks with httpx; the option
checks also run in process, through :func:`aiopyramid._granian.granian_options`.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from pyramid.exceptions import ConfigurationError

from tests.harness.servers import (
    ROOT,
    UNIT,
    console_script,
    free_port,
    import_required,
    require_module,
    running,
    wait_until,
)
from tests.harness.tls import self_signed_certificate

pytestmark = pytest.mark.server
httpx = import_required("httpx")


def write_ini(directory: Path, port: int, **server: str) -> Path:
    """An ini serving tests.apps.serving with granian and ``server``'s options."""
    lines = [
        "[app:main]",
        "use = call:tests.apps.serving:main",
        "",
        "[server:main]",
        "use = egg:aiopyramid#granian",
        "host = 127.0.0.1",
        f"port = {port}",
        *(f"{name} = {value}" for name, value in server.items()),
    ]
    ini = directory / "granian.ini"
    ini.write_text("\n".join(lines) + "\n")
    return ini


def pserve(ini: Path, port: int):
    """``pserve ini`` running for the duration of a block."""
    require_module("granian")
    import_required("aiopyramid.rsgi")
    return running([console_script("pserve"), str(ini)], port)


def test_pserve_serves_coroutine_and_plain_views_on_granian(tmp_path):
    """Coroutine views on the loop, plain views on the threads given, logged."""
    port = free_port()
    ini = write_ini(tmp_path, port, threads="2", access_log="true", workers="1")
    with pserve(ini, port) as process:
        url = process.url
        assert httpx.get(url + "/ahello", timeout=10 * UNIT).text == "Hello coroutine"
        assert httpx.get(url + "/hello", timeout=10 * UNIT).text == "Hello plain"
        environ = httpx.get(url + "/environ", timeout=10 * UNIT).json()
        # The plain views' pool the threads option made (the loop's default
        # executor names its threads asyncio_N).
        assert environ["thread"].startswith("aiopyramid")
        assert environ["SERVER_PORT"] == str(port)
        wait_until(lambda: "GET /ahello" in process.log(), 5)


def test_pserve_serves_http2_over_tls_on_granian(tmp_path):
    """ssl_certificate and ssl_keyfile: HTTPS, HTTP/2 by ALPN with http = auto."""
    require_module("h2")
    certificate, key = self_signed_certificate(tmp_path)
    port = free_port()
    ini = write_ini(
        tmp_path, port, ssl_certificate=certificate.name, ssl_keyfile=key.name
    )
    with pserve(ini, port) as process:
        trusted = ssl.create_default_context(cafile=str(certificate))
        with httpx.Client(verify=trusted, http2=True, timeout=10 * UNIT) as client:
            response = client.get(f"https://127.0.0.1:{port}/ahello")
        assert response.text == "Hello coroutine"
        assert response.http_version == "HTTP/2"
        assert process.process.poll() is None


def test_a_bad_option_stops_pserve_with_its_name_and_values(tmp_path):
    """http = 3: pserve exits, saying which option is wrong and what it may be."""
    require_module("granian")
    port = free_port()
    ini = write_ini(tmp_path, port, http="3")
    result = subprocess.run(
        [console_script("pserve"), str(ini)],
        capture_output=True,
        text=True,
        timeout=60 * UNIT,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode != 0
    assert "option http = '3' of egg:aiopyramid#granian" in result.stderr
    assert "http must be auto, 1 or 2" in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"http": "h3"}, "http must be auto, 1 or 2"),
        ({"port": "http"}, "port must be a port number from 1 to 65535"),
        ({"port": "70000"}, "port must be a port number from 1 to 65535"),
        ({"workers": "0"}, "workers must be a number of processes, 1 or more"),
        ({"threads": "many"}, "threads must be the threads that run plain views"),
        ({"access_log": "maybe"}, "access_log must be true or false"),
        ({"log_level": "loud"}, "log_level must be critical, error, warning"),
        ({"backlog": "10"}, "backlog must be the listen backlog, 128 or more"),
        ({"ssl_certificate": "missing.pem"}, "no file"),
        ({"listen": "*:80"}, "has no option listen in [server:main]; its options"),
    ],
)
def test_each_bad_option_is_named(tmp_path, options, message):
    """Every option is checked, and its error says what it may be."""
    granian_server = import_required("aiopyramid._granian")
    import_required("granian")
    with pytest.raises(ConfigurationError) as raised:
        granian_server.granian_options(options, tmp_path)
    assert message in str(raised.value)


def test_tls_needs_both_files(tmp_path):
    """A certificate without its key is refused, naming both options."""
    granian_server = import_required("aiopyramid._granian")
    import_required("granian")
    certificate, _ = self_signed_certificate(tmp_path)
    with pytest.raises(ConfigurationError) as raised:
        granian_server.granian_options({"ssl_certificate": str(certificate)})
    assert "both ssl_certificate and ssl_keyfile" in str(raised.value)


def test_good_options_become_granians(tmp_path):
    """The section's text becomes granian's arguments, relative paths from the ini's."""
    granian_server = import_required("aiopyramid._granian")
    constants = import_required("granian.constants")
    certificate, key = self_signed_certificate(tmp_path)
    kwargs, threads = granian_server.granian_options(
        {
            "host": "0.0.0.0",
            "port": "6543",
            "workers": "3",
            "threads": "8",
            "http": "2",
            "ssl_certificate": "cert.pem",
            "ssl_keyfile": "key.pem",
            "access_log": "on",
            "log_level": "warning",
        },
        tmp_path,
    )
    assert threads == 8
    assert kwargs["address"] == "0.0.0.0"
    assert (kwargs["port"], kwargs["workers"]) == (6543, 3)
    assert kwargs["interface"] == constants.Interfaces.RSGI
    assert kwargs["http"] == constants.HTTPModes.http2
    assert (kwargs["ssl_cert"], kwargs["ssl_key"]) == (certificate, key)
    assert kwargs["log_access"] is True


def test_the_served_application_sets_up_its_workers_loop(tmp_path):
    """At the loop's start: the collector as in the worker, threads for plain views."""
    import asyncio
    import gc
    import threading

    granian_server = import_required("aiopyramid._granian")
    import_required("aiopyramid.rsgi")
    from pyramid.config import Configurator

    settings = {"aiopyramid.gc_freeze": "false", "aiopyramid.gc_threshold": "4321"}
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
    application = granian_server.served(config.make_wsgi_app(), threads=3)
    loop = asyncio.new_event_loop()
    before = gc.get_threshold()
    try:
        application.__rsgi_init__(loop)
        assert gc.get_threshold()[0] == 4321
        names = loop.run_until_complete(
            asyncio.gather(
                *[
                    loop.run_in_executor(None, lambda: threading.current_thread().name)
                    for _ in range(3)
                ]
            )
        )
        assert all(name.startswith("aiopyramid") for name in names)
        application.__rsgi_del__(loop)
    finally:
        gc.set_threshold(*before)
        loop.close()


def test_without_granian_the_error_names_the_extra(monkeypatch):
    """granian missing: the error says which extra installs it."""
    granian_server = import_required("aiopyramid._granian")
    monkeypatch.setitem(sys.modules, "granian", None)  # import granian fails
    with pytest.raises(ImportError, match=r"pip install aiopyramid\[granian\]"):
        granian_server.granian_options({"port": "8000"})
