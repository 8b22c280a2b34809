"""Fixtures: the whole application on a real, migrated database.

``pytest`` reads testing.ini; ``pytest --ini OTHER.ini`` reads another file
(its ``[app:main]`` and ``[alembic]`` sections), one that names PostgreSQL
for instance.  The database is migrated to the newest revision first and
downgraded at the end, and its tables are emptied after each test.
"""

import alembic.command
import alembic.config
import pytest
import webtest
from aiopyramid.testing import SynchronousApp
from pyramid.paster import get_appsettings
from sqlalchemy.ext.asyncio import AsyncEngine

from {{ cookiecutter.package_name }} import main, models
from {{ cookiecutter.package_name }}.models.meta import Base


def pytest_addoption(parser):
    parser.addoption(
        "--ini", metavar="INI_FILE", help="the tests' ini file (default: testing.ini)"
    )


@pytest.fixture(scope="session")
def ini_file(request):
    """The tests' ini file."""
    return request.config.option.ini or str(request.config.rootpath / "testing.ini")


@pytest.fixture(scope="session")
def app_settings(ini_file):
    """The ``[app:main]`` settings of the ini file."""
    return get_appsettings(ini_file)


@pytest.fixture(scope="session")
def script_engine(ini_file, app_settings):
    """An engine on the migrated test database, through the scripts' URL."""
    config = alembic.config.Config(ini_file)
    alembic.command.upgrade(config, "head")
    engine = models.get_script_engine(app_settings)
    yield engine
    engine.dispose()
    alembic.command.downgrade(config, "base")


@pytest.fixture(scope="session")
def app(app_settings, script_engine):
    """The application, run by SynchronousApp on one event loop, as a worker would.

    The asyncio driver's connections belong to the loop that opened them,
    so the loop lasts for the whole run, and the pool is closed on it.
    """
    router = main({}, **app_settings)
    with SynchronousApp(router) as app:
        yield app
        engine = router.registry["dbengine"]
        app.loop.run_until_complete(AsyncEngine(engine).dispose())


@pytest.fixture
def dbsession(script_engine):
    """A session on the test database, to set up and check; tables emptied after."""
    session = models.get_session_factory(script_engine)()
    yield session
    session.close()
    with script_engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def testapp(app, dbsession):
    """WebTest's client of the application."""
    return webtest.TestApp(app)
