"""Tests of the database drivers on the harness's real PostgreSQL server.

SQLAlchemy's async engines (asyncpg, psycopg) and its sync engine (psycopg)
each round-trip a query and an ORM insert and select; the server keeps its
data and its port across a restart, and leaves nothing behind when stopped.
Each test drops the tables it makes, so the module's database stays empty.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tests.harness.postgres import PostgresServer, database_name
from tests.harness.servers import UNIT, import_required

pytestmark = [pytest.mark.server, pytest.mark.database]
import_required("asyncpg")
psycopg = import_required("psycopg")


def run(coroutine):
    """Run a test coroutine with a bounded time."""
    return asyncio.run(asyncio.wait_for(coroutine, 30 * UNIT))


def note_model(table: str) -> Any:
    """A mapped class on ``table``, with a metadata of its own."""

    class Base(DeclarativeBase):
        """A declarative base, so that each model has a metadata of its own."""

    class Note(Base):
        """A line of text."""

        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    return Note


def public_tables(postgres: PostgresServer, database: str) -> str:
    """The tables of ``database``'s public schema, one a line."""
    return postgres.sql(
        database,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_fixture_gives_an_own_server_and_the_module_a_fresh_database(
    postgres, postgres_database
):
    """The module's database is named after it, empty, on a small private server."""
    assert postgres_database == "test_database_drivers"
    assert postgres.sql(postgres_database, "SELECT current_database()") == (
        "test_database_drivers"
    )
    assert public_tables(postgres, postgres_database) == ""
    settings = postgres.sql(
        "postgres",
        "SELECT current_setting('port'), current_setting('listen_addresses'), "
        "current_setting('fsync'), current_setting('max_connections'), "
        "current_setting('data_directory')",
    ).split("|")
    assert postgres.port != 5432
    assert settings[:4] == [str(postgres.port), "127.0.0.1", "off", "300"]
    assert Path(settings[4]) == postgres.data
    assert postgres.directory is not None
    assert postgres.data.is_relative_to(postgres.directory)


def test_each_module_has_a_database_of_its_own():
    """Modules of the same name in different folders get different databases."""
    assert database_name("tests.test_config") == "test_config"
    assert database_name("tests.websocket.test_config") == "websocket_test_config"
    assert database_name("tests.Test-3") == "test_3"
    assert database_name("tests.3d") == "_3d"
    assert database_name("tests." + "a" * 80) == "a" * 63


def test_create_database_makes_a_new_database_once(postgres):
    """create_database() returns the name of a new database and refuses a second."""
    assert postgres.create_database("made_once") == "made_once"
    try:
        assert postgres.sql("made_once", "SELECT current_database()") == "made_once"
        with pytest.raises(AssertionError, match="already exists"):
            postgres.create_database("made_once")
        with pytest.raises(ValueError, match="not a plain identifier"):
            postgres.create_database('bad"; DROP DATABASE postgres; --')
    finally:
        postgres.drop_database("made_once")
    assert postgres.sql(
        "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'made_once'"
    ) == ("0")


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg", "psycopg_async"])
def test_async_engine_round_trips_a_query_and_orm_rows(
    postgres, postgres_database, driver
):
    """create_async_engine on the driver's URL runs a query and writes ORM rows."""
    note = note_model(f"notes_{driver}")
    engine = create_async_engine(postgres.url(postgres_database, driver))

    async def main():
        try:
            async with engine.begin() as connection:
                row = (
                    await connection.execute(text("SELECT current_database(), 1 + 1"))
                ).one()
                assert tuple(row) == (postgres_database, 2)
                await connection.run_sync(note.metadata.create_all)
            async with AsyncSession(engine) as session, session.begin():
                session.add_all([note(text="one"), note(text="two")])
            async with AsyncSession(engine) as session:
                texts = await session.scalars(select(note.text).order_by(note.id))
                assert texts.all() == ["one", "two"]
            # Committed, as another client sees.
            assert postgres.sql(
                postgres_database, f"SELECT text FROM notes_{driver} ORDER BY id"
            ) == ("one\ntwo")
        finally:
            async with engine.begin() as connection:
                await connection.run_sync(note.metadata.drop_all)
            await engine.dispose()

    run(main())
    assert engine.dialect.is_async
    assert engine.dialect.driver == driver.removesuffix("_async")


def test_sync_engine_round_trips_a_query_and_orm_rows(postgres, postgres_database):
    """create_engine on the psycopg URL runs a query and writes ORM rows."""
    note = note_model("notes_sync")
    engine = create_engine(postgres.url(postgres_database, "psycopg"))
    try:
        with engine.begin() as connection:
            row = connection.execute(text("SELECT current_database(), 1 + 1")).one()
            assert tuple(row) == (postgres_database, 2)
            note.metadata.create_all(connection)
        with Session(engine) as session, session.begin():
            session.add_all([note(text="one"), note(text="two")])
        with Session(engine) as session:
            texts = session.scalars(select(note.text).order_by(note.id)).all()
        assert texts == ["one", "two"]
        assert postgres.sql(
            postgres_database, "SELECT text FROM notes_sync ORDER BY id"
        ) == ("one\ntwo")
    finally:
        with engine.begin() as connection:
            note.metadata.drop_all(connection)
        engine.dispose()
    assert not engine.dialect.is_async
    assert engine.dialect.driver == "psycopg"


def test_restart_keeps_data_and_port_and_pre_ping_recovers(postgres, postgres_database):
    """After restart() the data and port remain; pre-ping replaces dead connections."""
    url = postgres.url(postgres_database)
    pinging = create_async_engine(url, pool_pre_ping=True, pool_size=1)
    plain = create_async_engine(url, pool_size=1)
    started = "SELECT pg_backend_pid(), pg_postmaster_start_time()"

    async def main():
        try:
            async with pinging.begin() as connection:
                await connection.execute(text("CREATE TABLE kept (n int)"))
                await connection.execute(text("INSERT INTO kept VALUES (42)"))
                before = (await connection.execute(text(started))).one()
            async with plain.connect() as connection:
                await connection.execute(text("SELECT 1"))
            port = postgres.port
            await asyncio.to_thread(postgres.restart)
            assert postgres.port == port
            assert postgres.sql("postgres", "SHOW port") == str(port)
            # The plain engine's pooled connection died with the old server...
            async with plain.connect() as connection:
                with pytest.raises(DBAPIError) as failed:
                    await connection.execute(text("SELECT 1"))
            assert failed.value.connection_invalidated
            # ...and the pinging engine's too, which it replaced unseen.
            async with pinging.connect() as connection:
                after = (await connection.execute(text(started))).one()
                kept = await connection.scalar(text("SELECT n FROM kept"))
            assert kept == 42
            assert after[0] != before[0]
            assert after[1] > before[1]
        finally:
            async with pinging.begin() as connection:
                await connection.execute(text("DROP TABLE IF EXISTS kept"))
            await pinging.dispose()
            await plain.dispose()

    run(main())


def test_stop_ends_every_process_and_removes_the_folder():
    """stop() with a client connected ends every process and removes the folder."""
    with PostgresServer() as server:
        directory = server.directory
        assert server.process is not None
        postmaster = server.process.process.pid
        client = psycopg.connect(
            host="127.0.0.1", port=server.port, user="postgres", dbname="postgres"
        )
        try:
            backend = client.execute("SELECT pg_backend_pid()").fetchone()[0]
            processes = [postmaster, *children(postmaster)]
            assert backend in processes
            server.stop()
            assert not any(alive(pid) for pid in processes)
            assert directory is not None
            assert not directory.exists()
            with pytest.raises(psycopg.OperationalError):
                client.execute("SELECT 1")
        finally:
            client.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), 1).close()
    assert "database system is shut down" in server.log()


def test_stop_cleans_up_after_a_failed_start():
    """A start failing on a taken port keeps its log; stop() then removes the rest."""
    server = PostgresServer()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        try:
            with pytest.raises(pytest.fail.Exception, match="Address already in use"):
                server.start()
            directory = server.directory
            assert directory is not None
            assert directory.exists()
        finally:
            server.stop()
    assert not directory.exists()
    assert server.process is None
    assert "could not bind IPv4 address" in server.log()
