"""predictor fit key: one predictor per identical fit

Revision ID: 0007_predictor_fit_key
Revises: 0006_child_jobs
Create Date: 2026-11-29 17:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_predictor_fit_key"
down_revision: str | None = "0006_child_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictors") as batch:
        batch.add_column(sa.Column("fit_key", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_predictors_project_id_fit_key"), ["project_id", "fit_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("predictors") as batch:
        batch.drop_constraint(op.f("uq_predictors_project_id_fit_key"), type_="unique")
        batch.drop_column("fit_key")
