"""data warnings: skipped files and warnings on datasets, reason and warnings on scores

Revision ID: 0004_data_warnings
Revises: 0003_predictors
Create Date: 2026-11-29 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_data_warnings"
down_revision: str | None = "0003_predictors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("skipped", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("warnings")
        batch.drop_column("reason")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("warnings")
        batch.drop_column("skipped")
