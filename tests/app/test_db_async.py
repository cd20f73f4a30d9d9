"""The async database of the read path, on SQLite and on PostgreSQL: one SQL for both, JSON
as stored text, and an unreachable database as DatabaseUnavailable."""

import asyncio
import json
from pathlib import Path

import psycopg
import pytest

from app.db_async import DatabaseUnavailable, PostgresDatabase, open_database
from app.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL


def test_the_same_sql_reads_and_writes_both_databases(settings: Settings) -> None:
    async def scenario() -> None:
        database = open_database(settings.database_url)
        try:
            changed = await database.execute(
                "INSERT INTO api_key (id, tenant, prefix, key_hash, created_at) "
                "VALUES (:id, :tenant, 'dk_x', :hash, :at)",
                {"id": "key_1", "tenant": "acme", "hash": "h" * 64, "at": "2024-01-02 03:04:05"},
            )
            assert changed == 1
            rows = await database.fetch(
                "SELECT id, tenant FROM api_key WHERE tenant = :tenant", {"tenant": "acme"}
            )
            assert rows == [("key_1", "acme")]
            assert await database.fetch("SELECT id FROM job WHERE id = :id", {"id": "x"}) == []
        finally:
            await database.close()

    asyncio.run(scenario())


def test_json_columns_come_back_as_their_stored_text(settings: Settings) -> None:
    async def scenario() -> None:
        database = open_database(settings.database_url)
        try:
            await database.execute(
                "INSERT INTO file (id, tenant, purpose, filename, format, options, bytes, status, "
                "storage_key, prepared_bytes, created_at, updated_at) VALUES ('file_1', 't', "
                "'dataset', 'x.npz', 'npz', :options, 0, 'ready', 'k', 0, :at, :at)",
                {"options": '{"a": [1, 2]}', "at": "2024-01-02 03:04:05"},
            )
            (options,) = (await database.fetch("SELECT options FROM file", {}))[0]
            assert isinstance(options, str | bytes)
            assert json.loads(options) == {"a": [1, 2]}
        finally:
            await database.close()

    asyncio.run(scenario())


def test_a_missing_sqlite_file_is_unavailable_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"

    async def scenario() -> None:
        database = open_database(f"sqlite:///{path}")
        with pytest.raises(DatabaseUnavailable):
            await database.fetch("SELECT 1", {})

    asyncio.run(scenario())
    assert not path.exists()


def test_postgresql_down_is_unavailable_at_once() -> None:
    async def scenario() -> None:
        # Port 1: nothing listens, the connection is refused.
        database = open_database("postgresql+psycopg://postgres@127.0.0.1:1/none")
        with pytest.raises(DatabaseUnavailable):
            await asyncio.wait_for(database.fetch("SELECT 1", {}), 10)

    asyncio.run(scenario())


def test_a_connection_the_server_dropped_is_replaced(postgres_url: str) -> None:
    """A restarted server leaves the pool's idle connections dead: the next statement runs on
    a new one instead of failing."""

    async def scenario() -> None:
        database = open_database(postgres_url)
        try:
            ((pid,),) = await database.fetch("SELECT pg_backend_pid()", {})
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            ((other,),) = await database.fetch("SELECT pg_backend_pid()", {})
            assert other != pid
        finally:
            await database.close()

    asyncio.run(scenario())


def test_every_connection_busy_too_long_is_unavailable(postgres_url: str) -> None:
    async def scenario() -> None:
        conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        database = PostgresDatabase(conninfo, max_connections=1, wait_seconds=0.3)
        try:
            slow = asyncio.create_task(database.fetch("SELECT pg_sleep(1)", {}))
            await asyncio.sleep(0.1)
            with pytest.raises(DatabaseUnavailable):
                await database.fetch("SELECT 1", {})
            await slow
            # Waiting its turn within the bound is fine, in order of arrival.
            first = asyncio.create_task(database.fetch("SELECT 1, pg_sleep(0.1)", {}))
            second = asyncio.create_task(database.fetch("SELECT 2", {}))
            assert (await first)[0][0] == 1
            assert await second == [(2,)]
        finally:
            await database.close()

    asyncio.run(scenario())
