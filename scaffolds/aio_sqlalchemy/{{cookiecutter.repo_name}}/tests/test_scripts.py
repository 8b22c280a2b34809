"""What runs outside the server (the migrations, the initialize command), and
the checks of the two database URLs."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pyramid.exceptions import ConfigurationError
from sqlalchemy import func, select

from {{ cookiecutter.package_name }} import main, models
from {{ cookiecutter.package_name }}.models.meta import Base
from {{ cookiecutter.package_name }}.models.note import Note
from {{ cookiecutter.package_name }}.scripts import initialize_db


def test_the_migrations_build_what_the_models_describe(script_engine):
    """After ``upgrade head``, alembic finds nothing left to migrate."""
    with script_engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, Base.metadata) == []


def test_initialize_db_adds_the_samples_once(ini_file, dbsession, capsys):
    """The command adds sample notes to an empty database, and only then."""
    assert initialize_db.main([ini_file]) == 0
    assert initialize_db.main([ini_file]) == 0
    count = dbsession.scalar(select(func.count()).select_from(Note))
    assert count == len(initialize_db.SAMPLES)
    assert capsys.readouterr().out.splitlines() == [
        f"Added {count} sample notes.",
        "The database has notes already: nothing added.",
    ]


def test_the_scripts_url_must_name_the_applications_database(app_settings):
    """A scripts' URL that leads elsewhere is refused, with the fix."""
    settings = {**app_settings, "scripts.sqlalchemy.url": "sqlite:///elsewhere.sqlite"}
    with pytest.raises(ConfigurationError, match="name different databases"):
        models.get_script_engine(settings)


def test_the_application_refuses_a_blocking_driver_in_the_greenlet_mode(app_settings):
    """A blocking driver in sqlalchemy.url, which would stop the loop, is refused."""
    settings = {**app_settings, "sqlalchemy.url": "sqlite://"}
    with pytest.raises(ConfigurationError, match="Use an asyncio driver"):
        main({}, **settings)
