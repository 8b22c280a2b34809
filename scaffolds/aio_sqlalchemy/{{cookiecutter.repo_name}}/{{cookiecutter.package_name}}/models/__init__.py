"""The database: engines, sessions, and the models.

One database, two URLs in the ini file's ``[app:main]``:

* ``sqlalchemy.url``, an asyncio driver (``sqlite+aiosqlite``,
  ``postgresql+asyncpg``), for the application.  With ``aiopyramid.mode =
  greenlet``, SQLAlchemy's ordinary sync API on it (this module's sessions,
  in route factories, plain views, coroutine views and pyramid_tm's commit)
  waits for each query by yielding to the event loop, which serves other
  requests meanwhile;
* ``scripts.sqlalchemy.url``, the same database through a blocking driver
  (``sqlite``, ``postgresql+psycopg``), for what runs outside the server,
  with no event loop: alembic and
  ``initialize_{{ cookiecutter.package_name }}_db``.
"""

import zope.sqlalchemy
from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool
from sqlalchemy import engine_from_config
from sqlalchemy.engine import make_url
from sqlalchemy.orm import configure_mappers, sessionmaker

from .note import Note  # noqa: F401  (import every model here, so all are mapped)

# Set up the relationships between the models now, so that a mistake in them
# fails at start-up rather than at the first query.
configure_mappers()

#: The settings of the application's engine: ``sqlalchemy.url`` and options.
APP_PREFIX = "sqlalchemy."
#: The settings of the scripts' engine: ``scripts.sqlalchemy.url`` and options.
SCRIPTS_PREFIX = "scripts.sqlalchemy."


def get_engine(settings, prefix=APP_PREFIX):
    """The engine that the ``prefix`` settings describe (``url``, pool options)."""
    # engine_from_config converts pool_size, max_overflow, pool_timeout and
    # pool_recycle from strings, but not pool_pre_ping, where the string
    # "false" would mean true.
    flag = prefix + "pool_pre_ping"
    if flag in settings:
        settings = {**settings, flag: asbool(settings[flag])}
    return engine_from_config(settings, prefix)


def get_app_engine(settings):
    """The application's engine, refusing a blocking driver in the greenlet mode."""
    engine = get_engine(settings, APP_PREFIX)
    mode = settings.get("aiopyramid.mode", "executor").strip().lower()
    if mode == "greenlet" and not engine.dialect.is_async:
        raise ConfigurationError(
            f"sqlalchemy.url ({engine.url!r}) names a blocking driver, which "
            "would stop the event loop at every query in aiopyramid.mode = "
            "greenlet. Use an asyncio driver (sqlite+aiosqlite://, "
            "postgresql+asyncpg://), or set aiopyramid.mode = thread."
        )
    return engine


def _place(url):
    """Where a URL's database is: its backend, host, port and name."""
    return {
        "backend": url.get_backend_name(),
        "host": url.host,
        "port": url.port,
        "database": url.database,
    }


def get_script_engine(settings):
    """The scripts' engine: ``scripts.sqlalchemy.url``, the application's database."""
    app_url = make_url(settings[APP_PREFIX + "url"])
    script_url = make_url(settings[SCRIPTS_PREFIX + "url"])
    app_place, script_place = _place(app_url), _place(script_url)
    differences = [name for name in app_place if app_place[name] != script_place[name]]
    if differences:
        raise ConfigurationError(
            f"scripts.sqlalchemy.url ({script_url!r}) and sqlalchemy.url "
            f"({app_url!r}) name different databases (their "
            f"{', '.join(differences)} differ): migrations would not reach the "
            "application's database. Write the same URL with a blocking "
            "driver: sqlite:/// for sqlite+aiosqlite:///, postgresql+psycopg:// "
            "for postgresql+asyncpg://."
        )
    engine = get_engine(settings, SCRIPTS_PREFIX)
    if engine.dialect.is_async:
        raise ConfigurationError(
            f"scripts.sqlalchemy.url ({script_url!r}) names an asyncio driver, "
            "but scripts run without an event loop. Use a blocking driver: "
            "sqlite:///, postgresql+psycopg://."
        )
    return engine


def get_session_factory(engine):
    """A factory of sessions bound to ``engine``."""
    return sessionmaker(bind=engine)


def get_tm_session(session_factory, transaction_manager, request=None):
    """A session that joins ``transaction_manager``'s transactions.

    It is committed or rolled back when the transaction is: by pyramid_tm
    at the end of a request, by ``with transaction_manager:`` in a script.
    """
    dbsession = session_factory(info={"request": request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def includeme(config):
    """Give each request ``request.dbsession``, in a transaction of pyramid_tm's.

    pyramid_tm begins a transaction for each request and commits it once the
    view has returned (or aborts it if the view raised).
    """
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config.include("pyramid_tm")

    engine = get_app_engine(settings)
    session_factory = get_session_factory(engine)
    config.registry["dbengine"] = engine
    config.registry["dbsession_factory"] = session_factory

    def dbsession(request):
        return get_tm_session(session_factory, request.tm, request=request)

    config.add_request_method(dbsession, reify=True)
