"""What predictors are fitted on: stored zero-shot scores and the fine-tuning matrix."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidError
from app.models import Score

SPLIT = "test"
ZERO_SHOT = "zero_shot_accuracy"


@dataclass(frozen=True)
class TaskScores:
    """The stored zero-shot scores of one dataset under one base model (one split)."""

    measures: dict[str, float | None]
    intervals: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    zero_shot_accuracy: float | None = None
    n: int = 0

    def has(self, feature: str) -> bool:
        """Whether `feature` was computed (its value may still be undefined, i.e. None)."""
        return feature == ZERO_SHOT or feature in self.measures

    def value(self, feature: str) -> float | None:
        """The feature's value (None when not computed or undefined)."""
        if feature == ZERO_SHOT:
            return self.zero_shot_accuracy
        return self.measures.get(feature)


@dataclass(frozen=True)
class TrainingPoint:
    """One fine-tuned task: feature x and target y."""

    dataset_id: str
    x: float
    y: float


def load_scores(
    session: Session,
    *,
    project_id: str,
    model_id: str,
    dataset_ids: Iterable[str] | None = None,
    split: str = SPLIT,
) -> dict[str, TaskScores]:
    """Stored scores of `model_id` per dataset (only datasets with at least one score)."""
    query = select(Score).where(
        Score.project_id == project_id, Score.model_id == model_id, Score.split == split
    )
    if dataset_ids is not None:
        query = query.where(Score.dataset_id.in_(list(dataset_ids)))
    grouped: dict[str, list[Score]] = {}
    for row in session.scalars(query.order_by(Score.id)):
        grouped.setdefault(row.dataset_id, []).append(row)
    return {dataset_id: _task_scores(rows) for dataset_id, rows in grouped.items()}


def finite(value: float | None) -> float | None:
    """`value` as a float, or None when missing or not finite (undefined)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _task_scores(rows: Sequence[Score]) -> TaskScores:
    accuracies = [finite(r.zero_shot_accuracy) for r in rows]
    accuracy = next((a for a in accuracies if a is not None), None)
    return TaskScores(
        measures={r.measure: finite(r.value) for r in rows},
        intervals={r.measure: (finite(r.ci_low), finite(r.ci_high)) for r in rows},
        zero_shot_accuracy=accuracy,
        n=max(r.n for r in rows),
    )


def load_matrix(session: Session, *, project_id: str, base_model_id: str, method: str) -> Any:
    """The accuracy matrix of (base model, method) from the fine-tuning service."""
    from app.matrices import service as matrices_service

    return matrices_service.build_matrix(
        session, project_id=project_id, base_model_id=base_model_id, method=method
    )


def target_of(row: Any, target: str) -> float | None:
    """G (`gain`) or the out-of-domain change (`ood_change`) of a matrix row."""
    return finite(row.gain if target == "gain" else row.ood_change)


def finetuned_rows(matrix: Any) -> dict[str, Any]:
    """One matrix row per training dataset: the last one listed (the most recent fine-tune)."""
    return {row.train_dataset_id: row for row in matrix.rows}


def finetuned_accuracy(row: Any) -> float | None:
    """The fine-tuned model's accuracy on its own training task."""
    return finite(row.accuracies.get(row.train_dataset_id))


def lacks_score(row: Any, scores: TaskScores | None, feature: str, target: str) -> bool:
    """Whether a fine-tuned task with a known target lacks the feature's stored score (or, for
    `zero_shot_accuracy`, a stored zero-shot accuracy): a score job would add it."""
    if row is None or target_of(row, target) is None:
        return False
    if scores is None or not scores.has(feature):
        return True
    return feature == ZERO_SHOT and scores.zero_shot_accuracy is None


def too_few_scored(
    rows: Mapping[str, Any],
    scores: Mapping[str, TaskScores],
    *,
    model_id: str,
    feature: str,
    target: str,
    n_points: int,
    minimum: int = 3,
) -> str | None:
    """When fewer than `minimum` tasks have the feature while fine-tuned tasks lack its score,
    the sentence that says so and which datasets to score (None otherwise)."""
    unscored = sorted(d for d, r in rows.items() if lacks_score(r, scores.get(d), feature, target))
    if n_points >= minimum or not unscored:
        return None
    tuned = sum(1 for r in rows.values() if target_of(r, target) is not None)
    measures = ["iimm"] if feature == ZERO_SHOT else [feature]
    body = json.dumps({"type": "score", "model_id": model_id, "dataset_id": "<each>",
                       "measures": measures})  # fmt: skip
    return (f"{tuned} fine-tuned tasks but {n_points} with {feature} scores (at least "
            f"{minimum} are needed): score datasets {', '.join(unscored)} "
            f"(POST /v1/jobs {body}; an assess job embeds and scores a dataset)")  # fmt: skip


def _problem(
    dataset_id: str, row: Any, scores: TaskScores | None, feature: str, target: str
) -> str:
    if row is None:
        return "no fine-tuned row in the matrix (submit a finetune job on it)"
    if target_of(row, target) is None:
        return f"its {target} is not known yet (the fine-tuned model is not evaluated)"
    if lacks_score(row, scores, feature, target):
        return (f"no {feature} score for dataset {dataset_id}: run a score job "
                "(its embeddings must be stored: an assess or embed job stores them)")  # fmt: skip
    return f"{feature!r} is undefined (NaN) for it"


def training_points(
    rows: Mapping[str, Any],
    scores: Mapping[str, TaskScores],
    *,
    feature: str,
    target: str,
    requested: Sequence[str] | None = None,
) -> tuple[list[TrainingPoint], list[dict[str, str]]]:
    """(x, y) per dataset with both a defined feature and a known target; (points, skipped).

    With `requested` every listed dataset must qualify (422 naming each that does not);
    by default the datasets that do not are returned as `skipped` with the reason.
    """
    candidates = list(dict.fromkeys(requested)) if requested is not None else sorted(rows)
    points: list[TrainingPoint] = []
    skipped: list[dict[str, str]] = []
    for dataset_id in candidates:
        row, task = rows.get(dataset_id), scores.get(dataset_id)
        if row is not None and target == "gain" and getattr(row, "flag", None):
            skipped.append({"dataset_id": dataset_id, "reason": row.flag})
            continue
        y = None if row is None else target_of(row, target)
        x = None if task is None else task.value(feature)
        if x is not None and y is not None:
            points.append(TrainingPoint(dataset_id, float(x), y))
        else:
            reason = _problem(dataset_id, row, task, feature, target)
            skipped.append({"dataset_id": dataset_id, "reason": reason})
    if requested is not None and skipped:
        listed = "; ".join(f"{s['dataset_id']}: {s['reason']}" for s in skipped)
        raise InvalidError(f"cannot fit on the requested datasets: {listed}")
    return points, skipped
