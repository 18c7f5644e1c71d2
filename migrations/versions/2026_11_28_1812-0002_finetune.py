"""fine-tuned models and evaluations (issue 5)

Revision ID: 0002_finetune
Revises: 0001_initial
Create Date: 2026-11-28 18:12:29.647843
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_finetune"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "finetuned_models",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("base_model_id", sa.String(length=40), nullable=False),
        sa.Column("train_dataset_id", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("val_accuracy", sa.Float(), nullable=True),
        sa.Column("checkpoint_uri", sa.String(length=2000), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_model_id"],
            ["base_models.id"],
            name=op.f("fk_finetuned_models_base_model_id_base_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_finetuned_models_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["train_dataset_id"],
            ["datasets.id"],
            name=op.f("fk_finetuned_models_train_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finetuned_models")),
        sa.UniqueConstraint("job_id", name=op.f("uq_finetuned_models_job_id")),
    )
    with op.batch_alter_table("finetuned_models", schema=None) as batch_op:
        batch_op.create_index(
            "ix_finetuned_models_base_model_id_method", ["base_model_id", "method"], unique=False
        )
        batch_op.create_index(
            "ix_finetuned_models_project_id_id", ["project_id", "id"], unique=False
        )

    op.create_table(
        "evaluations",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("base_model_id", sa.String(length=40), nullable=False),
        sa.Column("finetuned_model_id", sa.String(length=40), nullable=True),
        sa.Column("model_ref", sa.String(length=40), nullable=False),
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("split", sa.String(length=40), nullable=False),
        sa.Column("top1", sa.Float(), nullable=False),
        sa.Column("top5", sa.Float(), nullable=True),
        sa.Column("mean_per_class_recall", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("per_class_recall", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_model_id"],
            ["base_models.id"],
            name=op.f("fk_evaluations_base_model_id_base_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_evaluations_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["finetuned_model_id"],
            ["finetuned_models.id"],
            name=op.f("fk_evaluations_finetuned_model_id_finetuned_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_evaluations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
        sa.UniqueConstraint(
            "model_ref",
            "dataset_id",
            "split",
            name=op.f("uq_evaluations_model_ref_dataset_id_split"),
        ),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index("ix_evaluations_base_model_id", ["base_model_id"], unique=False)
        batch_op.create_index("ix_evaluations_project_id_id", ["project_id", "id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_project_id_id")
        batch_op.drop_index("ix_evaluations_base_model_id")

    op.drop_table("evaluations")
    with op.batch_alter_table("finetuned_models", schema=None) as batch_op:
        batch_op.drop_index("ix_finetuned_models_project_id_id")
        batch_op.drop_index("ix_finetuned_models_base_model_id_method")

    op.drop_table("finetuned_models")
