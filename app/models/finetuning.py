"""Fine-tuned models and their evaluations: the ground truth of the accuracy matrix."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, RecordMixin


class FinetunedModel(RecordMixin, Base):
    """A base model fine-tuned on one dataset's train split with one method."""

    __tablename__ = "finetuned_models"
    __table_args__ = (
        UniqueConstraint("job_id"),
        Index("ix_finetuned_models_project_id_id", "project_id", "id"),
        Index("ix_finetuned_models_base_model_id_method", "base_model_id", "method"),
    )

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    base_model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"))
    train_dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(40))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="ready")
    best_epoch: Mapped[int | None] = mapped_column(Integer, default=None)
    val_accuracy: Mapped[float | None] = mapped_column(Float, default=None)
    checkpoint_uri: Mapped[str | None] = mapped_column(String(2000), default=None)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)


class Evaluation(RecordMixin, Base):
    """Accuracy of one model (base = zero-shot, or fine-tuned) on one dataset split.

    `model_ref` is the evaluated model's id (the base model's for zero-shot, else the
    fine-tuned model's), so one unique constraint covers both kinds without NULL holes.
    """

    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("model_ref", "dataset_id", "split"),
        Index("ix_evaluations_project_id_id", "project_id", "id"),
        Index("ix_evaluations_base_model_id", "base_model_id"),
    )

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    base_model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"))
    finetuned_model_id: Mapped[str | None] = mapped_column(
        ForeignKey("finetuned_models.id", ondelete="CASCADE"), default=None
    )
    model_ref: Mapped[str] = mapped_column(String(40))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(40))
    top1: Mapped[float] = mapped_column(Float)
    top5: Mapped[float | None] = mapped_column(Float, default=None)
    mean_per_class_recall: Mapped[float | None] = mapped_column(Float, default=None)
    n: Mapped[int] = mapped_column(Integer)
    per_class_recall: Mapped[list[float]] = mapped_column(JSON, default=list)
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)
