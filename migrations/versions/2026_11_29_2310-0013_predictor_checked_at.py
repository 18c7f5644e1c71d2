"""predictor checked_at: when a refit last found the same points (staleness is counted from it)

Revision ID: 0013_predictor_checked_at
Revises: 0012_unique_dataset_content
Create Date: 2026-11-29 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_predictor_checked_at"
down_revision: str | None = "0012_unique_dataset_content"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictors") as batch:
        batch.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictors") as batch:
        batch.drop_column("checked_at")
