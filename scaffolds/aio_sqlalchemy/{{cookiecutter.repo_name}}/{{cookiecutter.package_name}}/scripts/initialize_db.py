"""Add sample notes to an empty database.

``initialize_{{ cookiecutter.package_name }}_db development.ini``, once the tables exist
(``alembic -c development.ini upgrade head``).
It runs outside the server, where there is no event loop for the
application's asyncio driver, so it connects to the same database through
``scripts.sqlalchemy.url`` (a blocking driver).
"""

import argparse
import sys

import transaction
from pyramid.paster import get_appsettings, setup_logging
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from .. import models
from ..models.note import Note

SAMPLES = [
    "Plain views and the route factory query with SQLAlchemy's ordinary ORM.",
    "On an asyncio driver, each of their queries yields to the event loop.",
    "alembic and this script use the blocking URL: they run without a loop.",
]


def setup_models(dbsession):
    """Add the sample notes unless there are notes already; return how many."""
    if dbsession.scalar(select(func.count()).select_from(Note)):
        return 0
    dbsession.add_all(Note(text=text) for text in SAMPLES)
    return len(SAMPLES)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config_uri", help="the ini file, e.g. development.ini")
    return parser.parse_args(argv)


def main(argv=None):
    """Run the command; return its exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.config_uri)
    settings = get_appsettings(args.config_uri)
    engine = models.get_script_engine(settings)
    manager = transaction.TransactionManager(explicit=True)
    try:
        with manager:
            dbsession = models.get_tm_session(
                models.get_session_factory(engine), manager
            )
            added = setup_models(dbsession)
    except (OperationalError, ProgrammingError) as error:
        print(
            f"{error.orig}\nCould not reach the notes table. Create the "
            f"tables with `alembic -c {args.config_uri} upgrade head` (on "
            "PostgreSQL, create the database first), then run this again.",
            file=sys.stderr,
        )
        return 1
    finally:
        engine.dispose()
    if added:
        print(f"Added {added} sample notes.")
    else:
        print("The database has notes already: nothing added.")
    return 0
