"""The `assess` document: a new task's zero-shot scores and every matching prediction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import AppError
from app.models.predictors import Predictor
from app.predictors import data
from app.predictors.choice import (
    PREFERRED_FEATURE,
    Comparison,
    NoComparison,
    RankBy,
    headline,
    newest,
    ood_change_by,
    pick_gain_predictor,
)
from app.predictors.predictions import prediction_of
from app.predictors.schemas import PredictionRead
from app.predictors.service import stale_note, stale_reasons

#: Beside the headline gain, per method: the key and the feature of the predictor shown.
BESIDE = (("gain_from_zero_shot_accuracy", data.ZERO_SHOT), ("gain_from_iimm", PREFERRED_FEATURE))


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
    predicted: list[Predictor],
    done: dict[str, PredictionRead],
    by: RankBy,
    comparison_of: Callable[[str], Comparison | NoComparison | None],
    stale: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """Per method of the predictors that `predicted` (their predictions in `done`): the gain
    of the predictor `by` picks (as `GET /v1/rankings` does; `predicted_by` says which and
    why) with the fine-tuned accuracy it implies, the other gain predictions beside it, the
    forgetting of the headline `ood_change` predictor, and whether the ones used are stale
    (`stale`: the stale predictors' reasons; a fresh predictor is preferred to a stale one on
    the same measure)."""
    chosen = headline(predicted, stale)
    beside = {f: newest((p for p in predicted if p.feature == f), stale) for _, f in BESIDE}
    out: dict[str, dict[str, Any]] = {}
    for method in sorted({p.method for p in predicted}):
        gains = [p for p in predicted if p.method == method and p.target == "gain"]
        gp, why = pick_gain_predictor(by, gains, method, comparison_of, stale)
        fp = chosen.get((method, "ood_change"))
        note = stale_note([gp, fp], stale)
        entry: dict[str, Any] = {
            "feature": None if gp is None else gp.feature, "predicted_by": why,
            "gain": None, "finetuned_accuracy": None, "ood_change": None,
            "ood_change_by": ood_change_by(fp, stale),
            "stale": note is not None, "stale_reason": note,
        }  # fmt: skip
        if gp is not None:
            pred = done[gp.id]
            entry["gain"] = pred.model_dump(mode="json", exclude={"finetuned_accuracy"})
            entry["finetuned_accuracy"] = (
                None if pred.finetuned_accuracy is None else pred.finetuned_accuracy.model_dump()
            )
        if fp is not None:
            ood = done[fp.id]
            entry["ood_change"] = ood.model_dump(mode="json", exclude={"finetuned_accuracy"})
        for key, feature in BESIDE:
            # with the fine-tuned accuracy it implies, beside the headline one
            other = beside[feature].get((method, "gain"))
            if other is None or (gp is not None and other.id == gp.id):
                entry[key] = None  # none, or the headline itself
            else:
                entry[key] = {**done[other.id].model_dump(mode="json"), "stale": other.id in stale}
        out[method] = entry
    return out


def assess_document(
    session: Session,
    *,
    project_id: str,
    model_id: str,
    dataset_id: str,
    comparison_of: Callable[[str], Comparison | NoComparison | None],
    by: RankBy = RankBy.best,
    level: float = 0.95,
) -> dict[str, Any]:
    """Zero-shot accuracy, IIMM with its interval, every measure, and per fine-tuning method
    the predicted gain, fine-tuned accuracy and forgetting (with intervals). The gain leads
    with the predictor `by` picks, as `GET /v1/rankings` does (`comparison_of(method)`: the
    comparison of this base model with that method, or None); the gains the zero-shot-accuracy
    and IIMM predictors give stand beside it (the baseline IIMM must beat)."""
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
            [p for p in predictors if p.id in done], done, by, comparison_of,
            stale_reasons(session, project_id, predictors),
        ),
        "predictions": [p.model_dump(mode="json") for p in done.values()],
        "unavailable": unavailable,
    }  # fmt: skip
    if not predictors:
        doc["note"] = ("no predictor for this base model yet: fine-tune at least 3 tasks, then "
                       "POST /v1/predictors")  # fmt: skip
    return doc
