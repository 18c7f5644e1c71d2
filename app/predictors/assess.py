"""The `assess` document: a new task's zero-shot scores and every matching prediction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import AppError
from app.models.predictors import Predictor
from app.predictors import data
from app.predictors.predictions import prediction_of
from app.predictors.schemas import PredictionRead

PREFERRED_FEATURE = "iimm"


def headline(predictors: Iterable[Predictor]) -> dict[tuple[str, str], Predictor]:
    """Per (method, target), the predictor a summary uses: IIMM first, then the newest."""
    best: dict[tuple[str, str], Predictor] = {}
    for p in sorted(predictors, key=lambda p: (p.feature == PREFERRED_FEATURE, p.id)):
        best[(p.method, p.target)] = p
    return best


def newest(predictors: Iterable[Predictor]) -> dict[tuple[str, str], Predictor]:
    """Per (method, target), the newest of `predictors`."""
    return {(p.method, p.target): p for p in sorted(predictors, key=lambda p: p.id)}


def model_predictors(session: Session, *, project_id: str, model_id: str) -> list[Predictor]:
    """Every predictor of the project fitted for `model_id`, oldest first."""
    return list(
        session.scalars(
            select(Predictor)
            .where(Predictor.project_id == project_id, Predictor.base_model_id == model_id)
            .order_by(Predictor.id)
        )
    )


def _predict_all(
    predictors: list[Predictor], task: data.TaskScores, dataset_id: str, level: float
) -> tuple[dict[str, PredictionRead], list[dict[str, str]]]:
    done: dict[str, PredictionRead] = {}
    unavailable: list[dict[str, str]] = []
    for p in predictors:
        x = task.value(p.feature)
        if x is None:
            reason = f"{p.feature!r} is undefined or not computed for this dataset"
            unavailable.append({"predictor_id": p.id, "feature": p.feature, "reason": reason})
            continue
        try:
            done[p.id] = prediction_of(
                p, x=x, acc_zs=task.zero_shot_accuracy, level=level, dataset_id=dataset_id
            )
        except AppError as exc:
            unavailable.append({"predictor_id": p.id, "feature": p.feature, "reason": exc.detail})
    return done, unavailable


def _per_method(
    chosen: dict[tuple[str, str], Predictor],
    done: dict[str, PredictionRead],
    baseline: dict[tuple[str, str], Predictor],
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for (method, target), p in sorted(chosen.items()):
        pred = done[p.id]
        entry = out.setdefault(
            method, {"gain": None, "finetuned_accuracy": None, "ood_change": None,
                     "gain_from_zero_shot_accuracy": None}
        )  # fmt: skip
        zs = baseline.get((method, "gain"))
        if target == "gain" and zs is not None and zs.id != p.id:
            # with the fine-tuned accuracy it implies, beside the headline one
            entry["gain_from_zero_shot_accuracy"] = done[zs.id].model_dump(mode="json")
        if target == "gain":
            entry["gain"] = pred.model_dump(mode="json", exclude={"finetuned_accuracy"})
            entry["finetuned_accuracy"] = (
                None if pred.finetuned_accuracy is None else pred.finetuned_accuracy.model_dump()
            )
        else:
            entry["ood_change"] = pred.model_dump(mode="json", exclude={"finetuned_accuracy"})
    return out


def assess_document(
    session: Session, *, project_id: str, model_id: str, dataset_id: str, level: float = 0.95
) -> dict[str, Any]:
    """Zero-shot accuracy, IIMM with its interval, every measure, and per fine-tuning method
    the predicted gain, fine-tuned accuracy and forgetting (with intervals), with the gain
    the zero-shot-accuracy predictor gives beside the headline one (the baseline IIMM must
    beat)."""
    scores = data.load_scores(
        session, project_id=project_id, model_id=model_id, dataset_ids=[dataset_id]
    )
    task = scores.get(dataset_id)
    if task is None:
        raise ValueError(f"no stored scores for dataset {dataset_id} under model {model_id}")
    predictors = model_predictors(session, project_id=project_id, model_id=model_id)
    done, unavailable = _predict_all(predictors, task, dataset_id, level)
    low, high = task.intervals.get(PREFERRED_FEATURE, (None, None))
    doc: dict[str, Any] = {
        "model_id": model_id, "dataset_id": dataset_id, "split": data.SPLIT, "n": task.n,
        "zero_shot_accuracy": task.zero_shot_accuracy,
        "iimm": {"value": task.value(PREFERRED_FEATURE), "ci_low": low, "ci_high": high},
        "measures": dict(sorted(task.measures.items())),
        "methods": _per_method(
            headline(p for p in predictors if p.id in done), done,
            newest(p for p in predictors if p.id in done and p.feature == data.ZERO_SHOT),
        ),
        "predictions": [p.model_dump(mode="json") for p in done.values()],
        "unavailable": unavailable,
    }  # fmt: skip
    if not predictors:
        doc["note"] = ("no predictor for this base model yet: fine-tune at least 3 tasks, then "
                       "POST /v1/predictors")  # fmt: skip
    return doc
