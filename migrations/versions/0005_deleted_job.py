"""deleted_job: the ids of deleted jobs, for gc to remove what a lost worker wrote after a delete

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deleted_job",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_job")),
    )
    op.create_index("ix_deleted_job_deleted_at", "deleted_job", ["deleted_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deleted_job_deleted_at", table_name="deleted_job")
    op.drop_table("deleted_job")
