"""predictors

Revision ID: 0003_predictors
Revises: 0002_finetune
Create Date: 2026-11-28 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_predictors"
down_revision: str | None = "0002_finetune"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "predictors",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("base_model_id", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("feature", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("split", sa.String(length=40), nullable=False),
        sa.Column("piecewise", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("fit", sa.JSON(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_model_id"],
            ["base_models.id"],
            name=op.f("fk_predictors_base_model_id_base_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_predictors_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictors")),
        sa.UniqueConstraint(
            "project_id",
            "idempotency_key",
            name=op.f("uq_predictors_project_id_idempotency_key"),
        ),
    )
    with op.batch_alter_table("predictors", schema=None) as batch_op:
        batch_op.create_index("ix_predictors_base_model_id", ["base_model_id"], unique=False)
        batch_op.create_index("ix_predictors_project_id_id", ["project_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("predictors", schema=None) as batch_op:
        batch_op.drop_index("ix_predictors_project_id_id")
        batch_op.drop_index("ix_predictors_base_model_id")

    op.drop_table("predictors")
