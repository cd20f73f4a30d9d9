"""Alembic environment: the URL comes from app.settings, the tables from app.models."""

from contextlib import nullcontext

from alembic import context
from sqlalchemy import engine_from_config, pool, text

from app import models  # noqa: F401  (registers the tables on Base.metadata)
from app.db import Base, file_lock, sqlite_lock_path
from app.settings import get_settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
target_metadata = Base.metadata
# The PostgreSQL advisory lock schema upgrades hold (any constant no other lock uses).
MIGRATION_LOCK = 7_326_001


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    # SQLite has no advisory lock, and runs DDL outside transactions: processes starting
    # together on a new file take turns through a file lock beside it instead.
    lock_path = sqlite_lock_path(url, "migrate")
    with file_lock(lock_path) if lock_path else nullcontext(), connectable.connect() as connection:
        # Batch mode lets ALTER-style migrations run on SQLite too.
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Processes starting together on a new database (API replicas, `migrate`)
                # take turns: the next one sees the schema already at head and does nothing.
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": MIGRATION_LOCK})
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
