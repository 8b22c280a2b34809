"""``pserve`` on granian: the ``egg:aiopyramid#granian`` server of an ini file.

.. code-block:: ini

    [server:main]
    use = egg:aiopyramid#granian
    host = 0.0.0.0
    port = 6543
    workers = 2
    threads = 8

PasteDeploy calls :func:`serve_granian` with the application ``pserve``
loaded and the section's options, as text.  Each option is checked before
anything starts, and a bad one is a
:class:`~pyramid.exceptions.ConfigurationError` that names it and what it
may be.  granian's own server (``granian.Granian``, the one its command line
runs) then serves the application through
:func:`aiopyramid.rsgi.make_rsgi_app` on its RSGI interface: granian's
workers are processes forked from ``pserve``'s, each with its own event loop
(uvloop when it is installed) and the application already loaded.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.settings import falsey, truthy

from ._collector import collector_settings, tune_collector

__all__ = ["OPTIONS", "granian_options", "serve_granian", "served"]

#: The options of the ``[server:main]`` section, and what each may be.
OPTIONS = {
    "host": "an address to listen on (default 127.0.0.1)",
    "port": "a port number from 1 to 65535 (default 8000)",
    "workers": "a number of processes, 1 or more (default 1)",
    "threads": "the threads that run plain views, 1 or more (default: "
    "the event loop's default executor)",
    "http": "auto, 1 or 2 (default auto)",
    "ssl_certificate": "the path of a PEM certificate file (with ssl_keyfile)",
    "ssl_keyfile": "the path of its PEM private key file",
    "ssl_keyfile_password": "the key file's password",
    "access_log": "true or false (default false)",
    "access_log_format": "granian's access log format",
    "log_level": "critical, error, warning, warn, info or debug (default info)",
    "backlog": "the listen backlog, 128 or more (default 1024)",
}

_HTTP = ("auto", "1", "2")
_LOG_LEVELS = ("critical", "error", "warning", "warn", "info", "debug")


def _bad(name: str, value: str) -> ConfigurationError:
    return ConfigurationError(
        f"[server:main] option {name} = {value!r} of egg:aiopyramid#granian: "
        f"{name} must be {OPTIONS[name]}."
    )


def _whole(options: Mapping[str, str], name: str, least: int, most: int) -> int | None:
    value = options.get(name)
    if value is None or not str(value).strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value) from None
    if not least <= number <= most:
        raise _bad(name, value)
    return number


def _choice(options: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> Any:
    value = str(options.get(name, "")).strip().lower()
    if value and value not in allowed:
        raise _bad(name, options[name])
    return value or None


def _file(options: Mapping[str, str], name: str, here: Path) -> Path | None:
    value = str(options.get(name, "")).strip()
    if not value:
        return None
    path = here / value  # relative to the ini file, as pserve's paths are
    if not path.is_file():
        raise ConfigurationError(
            f"[server:main] option {name} = {value!r} of egg:aiopyramid#granian: "
            f"no file {path}. {name} must be {OPTIONS[name]}."
        )
    return path


def _require_granian() -> None:
    """Import granian, or say which extra installs it."""
    try:
        import granian  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"egg:aiopyramid#granian needs granian 2.8 or later ({error}). "
            "Install it with `pip install aiopyramid[granian]`."
        ) from error


def granian_options(
    options: Mapping[str, str], here: str | Path = "."
) -> tuple[dict[str, Any], int | None]:
    """The keyword arguments of ``granian.Granian`` for ``options``, and ``threads``.

    ``options`` are the ``[server:main]`` section's, as text; relative file
    names are taken from ``here`` (the ini file's directory).  Raises
    :class:`~pyramid.exceptions.ConfigurationError` for an option it does
    not know or a value it cannot use, naming the option and what it may be.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"egg:aiopyramid#granian has no option {', '.join(unknown)} in "
            f"[server:main]; its options are {', '.join(OPTIONS)}."
        )
    _require_granian()
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels

    here = Path(here)
    kwargs: dict[str, Any] = {
        "address": str(options.get("host", "")).strip() or "127.0.0.1",
        "port": _whole(options, "port", 1, 65535) or 8000,
        "interface": Interfaces.RSGI,
        "workers": _whole(options, "workers", 1, 1024) or 1,
        "http": HTTPModes(_choice(options, "http", _HTTP) or "auto"),
        "log_access": False,
    }
    threads = _whole(options, "threads", 1, 10_000)
    backlog = _whole(options, "backlog", 128, 1 << 20)
    if backlog is not None:
        kwargs["backlog"] = backlog
    access = str(options.get("access_log", "")).strip().lower()
    if access:
        if access not in truthy | falsey:
            raise _bad("access_log", options["access_log"])
        kwargs["log_access"] = access in truthy
    if options.get("access_log_format"):
        kwargs["log_access_format"] = options["access_log_format"]
    level = _choice(options, "log_level", _LOG_LEVELS)
    if level is not None:
        kwargs["log_level"] = LogLevels(level)
    certificate = _file(options, "ssl_certificate", here)
    key = _file(options, "ssl_keyfile", here)
    if (certificate is None) != (key is None):
        raise ConfigurationError(
            "egg:aiopyramid#granian serves TLS with both ssl_certificate and "
            "ssl_keyfile in [server:main]: give the two files, or neither."
        )
    if certificate is not None:
        kwargs["ssl_cert"], kwargs["ssl_key"] = certificate, key
        if options.get("ssl_keyfile_password"):
            kwargs["ssl_key_password"] = options["ssl_keyfile_password"]
    return kwargs, threads


class _Served:
    """The RSGI application granian's workers run, with the plain views' pool.

    ``__rsgi__`` is the application's own, so a request costs nothing more.
    At the loop's start, before the application's own start, the collector
    is set up as in the gunicorn worker (``aiopyramid.gc_freeze`` and
    ``aiopyramid.gc_threshold``, see :mod:`aiopyramid._collector`) and
    ``threads`` threads become the loop's default executor, as the worker's
    ``threads`` do.
    """

    def __init__(
        self, rsgi: Any, threads: int | None, settings: Mapping[str, Any]
    ) -> None:
        self.__rsgi__ = rsgi.__rsgi__
        self._init: Callable[[Any], None] = getattr(
            rsgi, "__rsgi_init__", lambda loop: None
        )
        self.__rsgi_del__ = getattr(rsgi, "__rsgi_del__", lambda loop: None)
        self.threads = threads
        self.collector = collector_settings(settings)

    def __rsgi_init__(self, loop: Any) -> None:
        tune_collector(*self.collector)
        if self.threads is not None:
            loop.set_default_executor(
                ThreadPoolExecutor(self.threads, thread_name_prefix="aiopyramid")
            )
        self._init(loop)


def served_settings(app: Any) -> Mapping[str, Any]:
    """The Pyramid application's settings (empty for other WSGI applications)."""
    registry = getattr(app, "registry", None)
    return getattr(registry, "settings", None) or {}


def served(app: Any, threads: int | None = None, workers: int = 1) -> Any:
    """The RSGI application a granian worker of ``pserve`` runs for ``app``.

    Also for ``granian --interface rsgi --factory``, as ``bench/serving.py``
    does, to measure what ``pserve`` serves.
    """
    from .rsgi import make_rsgi_app

    # As gunicorn's workers say: one worker is one process.
    rsgi = make_rsgi_app(app, multiprocess=workers > 1)
    return _Served(rsgi, threads, served_settings(app))


def serve_granian(app: Any, global_conf: Mapping[str, str], **options: str) -> None:
    """Serve the WSGI application ``app`` with granian's RSGI server until stopped.

    PasteDeploy's server runner of ``use = egg:aiopyramid#granian``: see the
    module's documentation for the options.
    """
    kwargs, threads = granian_options(options, global_conf.get("here", "."))
    settings = served_settings(app)
    collector_settings(settings)  # a bad value stops pserve now, not a worker
    from granian import Granian

    if multiprocessing.get_start_method() != "fork":
        # granian's workers are processes: a forked one inherits the loaded
        # application, a spawned one would have to load it again, from a
        # target that pserve does not have.
        raise ConfigurationError(
            "egg:aiopyramid#granian needs processes started by fork, and this "
            f"platform starts them by {multiprocessing.get_start_method()}. "
            "Serve the application with granian's command line instead: "
            "`granian --interface rsgi --factory yourpackage:rsgi_app`, where "
            "rsgi_app returns aiopyramid.rsgi.make_rsgi_app(your WSGI app)."
        )

    def load(*args: Any) -> Any:  # granian types it as a callable
        # In each worker process, after the fork: its own RSGI application.
        return served(app, threads, workers)

    workers = kwargs["workers"]
    server = Granian("aiopyramid", **kwargs)
    server.serve(target_loader=load, wrap_loader=False)
