"""One Alembic history upgrades SQLite and PostgreSQL, and matches the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from app.db import Base, get_engine, upgrade_database


def test_upgrade_creates_the_tables_and_matches_the_models(database_url: str) -> None:
    upgrade_database(database_url)
    upgrade_database(database_url)  # idempotent
    engine = get_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"job", "job_event", "metric", "artifact", "alembic_version"} <= tables
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    if database_url.startswith("postgresql"):
        # Room on each page for a job row's next version (HOT updates): migration 0008.
        with engine.connect() as connection:
            options = connection.scalar(
                text("SELECT reloptions FROM pg_class WHERE relname = 'job'")
            )
        assert "fillfactor=70" in options
