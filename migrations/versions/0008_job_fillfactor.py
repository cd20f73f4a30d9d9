"""job: room on each page for a row's next version (fillfactor 70) and earlier autovacuum

A job's row is rewritten some 20 times (stages, epochs' progress, lease renewals). None of those
columns is indexed, so PostgreSQL can write the new version on the same page without touching
the five indexes (a HOT update) — when the page has room, which a full page (fillfactor 100)
does not. The fleet day (benchmarks/fleet_day.py) saw 59% of the job table's updates HOT;
with room left, 90%. Autovacuum at 5% dead rows instead of 20% keeps the table from
growing between passes. PostgreSQL only; SQLite has no such settings.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 04:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTINGS = "fillfactor, autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE job SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05, "
            "autovacuum_analyze_scale_factor = 0.05)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE job RESET ({SETTINGS})")
