"""app/db.py: a progress write's commit does not wait for the disk on PostgreSQL (only that
transaction's), and the helper is harmless on SQLite."""

from sqlalchemy import text

from app.db import relax_commit, session_scope, upgrade_database


def test_relax_commit_turns_off_synchronous_commit_for_one_transaction(
    database_url: str,
) -> None:
    upgrade_database(database_url)
    postgres = database_url.startswith("postgresql")
    with session_scope(database_url) as session:
        relax_commit(session)
        if postgres:
            assert session.scalar(text("SHOW synchronous_commit")) == "off"
        session.execute(text("UPDATE api_key SET tenant = tenant"))
    with session_scope(database_url) as session:
        if postgres:
            # The next transaction on the same pooled connection is durable again.
            assert session.scalar(text("SHOW synchronous_commit")) == "on"
        assert session.scalar(text("SELECT count(*) FROM job")) == 0
