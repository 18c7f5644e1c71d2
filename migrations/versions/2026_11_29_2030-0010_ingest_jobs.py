"""ingest jobs: a dataset's ingest job and problem; a job's `waits_for`

Revision ID: 0010_ingest_jobs
Revises: 0009_artifact_usage
Create Date: 2026-11-29 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_ingest_jobs"
down_revision: str | None = "0009_artifact_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("job_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("error", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("waits_for", sa.String(40), nullable=True))
        batch.create_index("ix_jobs_waits_for", ["waits_for"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_waits_for")
        batch.drop_column("waits_for")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("error")
        batch.drop_column("job_id")
