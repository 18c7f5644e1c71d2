"""one dataset per content in a project: a partial unique index on (project, fingerprint)

Datasets that failed and copies registered with `allow_duplicate` (the new
`duplicate_allowed` column) are not covered. Existing rows that share a content (registered
before the duplicate check, or by two ingest jobs at once) keep the oldest covered and the
others are marked `duplicate_allowed`, as if registered with the flag.

Revision ID: 0012_unique_dataset_content
Revises: 0011_score_prompts
Create Date: 2026-11-29 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_unique_dataset_content"
down_revision: str | None = "0011_score_prompts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE_CONTENT = sa.text("status <> 'failed' AND NOT duplicate_allowed")


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(
            sa.Column("duplicate_allowed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    datasets = sa.table(
        "datasets", sa.column("id", sa.String), sa.column("project_id", sa.String),
        sa.column("fingerprint", sa.String), sa.column("status", sa.String),
        sa.column("duplicate_allowed", sa.Boolean),
    )  # fmt: skip
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(datasets.c.id, datasets.c.project_id, datasets.c.fingerprint)
        .where(datasets.c.status != "failed")
        .order_by(datasets.c.id)
    ).all()
    seen: set[tuple[str, str]] = set()
    copies = []
    for row in rows:
        key = (row.project_id, row.fingerprint)
        if key in seen:
            copies.append(row.id)
        seen.add(key)
    for start in range(0, len(copies), 500):
        conn.execute(
            sa.update(datasets)
            .where(datasets.c.id.in_(copies[start : start + 500]))
            .values(duplicate_allowed=True)
        )
    op.create_index(
        "uq_datasets_project_fingerprint", "datasets", ["project_id", "fingerprint"],
        unique=True, sqlite_where=UNIQUE_CONTENT, postgresql_where=UNIQUE_CONTENT,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_datasets_project_fingerprint", table_name="datasets")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("duplicate_allowed")
