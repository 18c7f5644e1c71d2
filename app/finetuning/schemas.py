"""Schemas of fine-tuned models and evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FinetunedModelRead(BaseModel):
    """A base model fine-tuned on one dataset with one method, and how training went."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    base_model_id: str
    train_dataset_id: str
    method: str
    hyperparameters: dict[str, Any]
    status: str
    best_epoch: int | None
    val_accuracy: float | None
    checkpoint_uri: str | None
    metrics: dict[str, Any]
    job_id: str | None
    created_at: datetime


class FinetunedModelList(BaseModel):
    """A page of fine-tuned models; pass `next_cursor` as `cursor` for the next page."""

    items: list[FinetunedModelRead]
    next_cursor: str | None


class EvaluationRead(BaseModel):
    """Accuracy of a model (base = zero-shot, or fine-tuned) on one dataset split."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    model_id: str
    base_model_id: str
    base_model_name: str = Field(description="The base model's name.")
    finetuned_model_id: str | None
    dataset_id: str
    dataset_name: str = Field(description="The dataset's name.")
    split: str
    top1: float
    top5: float | None
    mean_per_class_recall: float | None
    per_class_recall: list[float | None] = Field(
        default_factory=list,
        description="Top-1 recall of each class in the dataset's class order; null for a class "
        "with no images in the split.",
    )
    n: int
    job_id: str | None
    created_at: datetime


class EvaluationList(BaseModel):
    """A page of evaluations; pass `next_cursor` as `cursor` for the next page."""

    items: list[EvaluationRead]
    next_cursor: str | None
