"""Alembic's environment: migrations through ``scripts.sqlalchemy.url``.

``alembic -c development.ini upgrade head`` reads the ``[alembic]`` section
of that file, and this module its ``[app:main]`` settings.  Migrations run
outside the server, with no event loop for the application's asyncio
driver, so they reach the same database through the scripts' URL, a
blocking driver.
"""

from alembic import context
from pyramid.paster import get_appsettings, setup_logging

from {{ cookiecutter.package_name }}.models import SCRIPTS_PREFIX, get_script_engine
from {{ cookiecutter.package_name }}.models.meta import Base

config = context.config
setup_logging(config.config_file_name)
settings = get_appsettings(config.config_file_name)
target_metadata = Base.metadata


def run_migrations_offline():
    """Print the migrations' SQL (``alembic ... upgrade head --sql``)."""
    context.configure(
        url=settings[SCRIPTS_PREFIX + "url"],
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run the migrations on the database."""
    engine = get_script_engine(settings)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot alter most of a table: batch operations
                # rebuild it instead.
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
