"""Predictor service: fit (synchronous: fits are tiny), list, get, delete. Flushes only."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import new_id, utcnow
from app.errors import InvalidError, NotFoundError
from app.idempotency import insert_once, replay, request_hash
from app.measures.prediction import LinearFit, PiecewiseFit, fit_auto, fit_linear
from app.models import Dataset, Evaluation, FinetunedModel, PretrainedModel
from app.models.predictors import Predictor
from app.ownership import get_owned
from app.pagination import page
from app.predictors import data
from app.predictors.schemas import FittedRange, LineStats, PredictorCreate, PredictorRead

_LINE_KEYS = ("slope", "intercept", "slope_se", "intercept_se", "r_squared", "slope_pvalue",
              "loo_rmse", "residual_sd")  # fmt: skip
_ASSOCIATION_KEYS = ("slope_pvalue", "pearson_r", "spearman_rho", "spearman_pvalue")


def known_features() -> list[str]:
    """Names a predictor can use as its feature."""
    from app.measures import ALL_MEASURES

    return [*ALL_MEASURES, data.ZERO_SHOT]


def check_feature(feature: str) -> None:
    """422 unless `feature` is a measure name or `zero_shot_accuracy`."""
    from app.measures import RETIRED

    if feature in RETIRED:
        raise InvalidError(RETIRED[feature])
    if feature not in known_features():
        raise InvalidError(f"unknown feature {feature!r}; use one of {known_features()}")


def check_method(method: str) -> None:
    """422 unless `method` is a fine-tuning method of the service."""
    from app.finetuning.params import METHOD_GRID_AXES

    if method not in METHOD_GRID_AXES:
        raise InvalidError(f"unknown fine-tuning method {method!r}; use one of "
                           f"{sorted(METHOD_GRID_AXES)}")  # fmt: skip


def check_datasets(session: Session, project_id: str, dataset_ids: list[str]) -> dict[str, str]:
    """The datasets' names by id; 404 for a dataset id that is not in the caller's project."""
    found: dict[str, str] = dict(
        session.execute(
            select(Dataset.id, Dataset.name).where(
                Dataset.project_id == project_id, Dataset.id.in_(dataset_ids)
            )
        ).all()
    )
    missing = [d for d in dataset_ids if d not in found]
    if missing:
        raise NotFoundError(f"dataset {missing[0]} not found")
    return found


def _fit(
    points: list[data.TrainingPoint], skipped: list[dict[str, str]], body: PredictorCreate
) -> LinearFit | PiecewiseFit:
    xs, ys = [p.x for p in points], [p.y for p in points]
    names = [p.dataset_id for p in points]
    try:
        if body.piecewise == "auto":
            return fit_auto(xs, ys, names=names)
        return fit_linear(xs, ys, names=names)
    except ValueError as exc:
        why = f"cannot fit {body.target} on {body.feature!r} for method {body.method!r}: {exc}"
        if skipped:
            left = "; ".join(f"{s['dataset_id']}: {s['reason']}" for s in skipped[:5])
            why += f" ({len(skipped)} dataset(s) of the matrix left out: {left})"
        raise InvalidError(why) from None


def _fitted(session: Session, project_id: str, body: PredictorCreate) -> Predictor:
    """A new (unsaved) predictor fitted on the matrix and the stored zero-shot scores."""
    get_owned(session, PretrainedModel, body.base_model_id, project_id, "model")
    check_feature(body.feature)
    check_method(body.method)
    if body.dataset_ids is not None:
        check_datasets(session, project_id, body.dataset_ids)
    matrix = data.load_matrix(
        session, project_id=project_id, base_model_id=body.base_model_id, method=body.method
    )
    rows = data.finetuned_rows(matrix)
    wanted = set(rows) | set(body.dataset_ids or ())
    scores = data.load_scores(
        session, project_id=project_id, model_id=body.base_model_id, dataset_ids=wanted
    )
    points, skipped = data.training_points(
        rows, scores, feature=body.feature, target=body.target, requested=body.dataset_ids
    )
    fit = _fit(points, skipped, body)
    return Predictor(
        id=new_id("prd"), project_id=project_id, base_model_id=body.base_model_id,
        method=body.method, feature=body.feature, target=body.target, split=data.SPLIT,
        piecewise=body.piecewise, kind=fit.kind, n=fit.n, fit=fit.to_dict(),
        points=[{"dataset_id": p.dataset_id, "x": p.x, "y": p.y} for p in points],
        skipped=skipped,
    )  # fmt: skip


def fit_key(row: Predictor) -> str:
    """Hash of what determines a fit: base model, method, feature, target, split, piecewise
    and the (dataset, x, y) points. Two requests that fit the same points are one predictor."""
    points = sorted((p["dataset_id"], p["x"], p["y"]) for p in row.points)
    return request_hash({"base_model_id": row.base_model_id, "method": row.method,
                         "feature": row.feature, "target": row.target, "split": row.split,
                         "piecewise": row.piecewise, "points": points})  # fmt: skip


def _same_fit(session: Session, project_id: str, key: str) -> Predictor | None:
    return session.scalar(
        select(Predictor).where(Predictor.project_id == project_id, Predictor.fit_key == key)
    )


def create_predictor(
    *, session: Session, project_id: str, body: PredictorCreate, idempotency_key: str | None
) -> tuple[Predictor, str]:
    """Fit and store a predictor; (row, how): ``created``, ``replayed`` (the row made with the
    same Idempotency-Key) or ``existing`` (the row of an identical fit, `fit_key`)."""
    digest = request_hash(body.model_dump(mode="json"))
    if existing := replay(session, Predictor, project_id, idempotency_key, digest):
        return existing, "replayed"
    row = _fitted(session, project_id, body)
    row.fit_key = fit_key(row)
    if (same := _same_fit(session, project_id, row.fit_key)) is not None:
        same.checked_at = utcnow()  # its points are today's: no evaluation since is newer data
        session.flush()
        return same, "existing"
    row.idempotency_key, row.request_hash = idempotency_key, digest
    try:
        row, created = insert_once(session, row, digest)
    except IntegrityError:  # a concurrent request stored the same fit first
        if (same := _same_fit(session, project_id, row.fit_key)) is None:
            raise
        same.checked_at = utcnow()
        session.flush()
        return same, "existing"
    return row, "created" if created else "replayed"


def get_predictor(*, session: Session, project_id: str, predictor_id: str) -> Predictor:
    """The caller's predictor (404 for other projects' ids)."""
    return get_owned(session, Predictor, predictor_id, project_id, "predictor")


def list_predictors(
    *,
    session: Session,
    project_id: str,
    filters: dict[str, str | None],
    cursor: str | None,
    limit: int,
) -> tuple[list[Predictor], str | None]:
    """A page of the caller's predictors, newest first, filtered by column equality."""
    query = select(Predictor).where(Predictor.project_id == project_id)
    for name, value in filters.items():
        if value is not None:
            query = query.where(getattr(Predictor, name) == value)
    return page(session, query, Predictor.id, cursor, limit)


def delete_predictor(*, session: Session, project_id: str, predictor_id: str) -> None:
    """Delete a predictor."""
    session.delete(get_predictor(session=session, project_id=project_id, predictor_id=predictor_id))
    session.flush()


def _hinge_se(fit: dict[str, Any], index: int) -> float | None:
    s, cov = fit.get("residual_sd"), fit["unscaled_cov"]
    if s is None or not math.isfinite(cov[index][index]):
        return None
    return s * math.sqrt(max(cov[index][index], 0.0))


def _stats(fit: dict[str, Any]) -> dict[str, Any]:
    """The read statistics of a stored fit (`to_dict` output: NaN already None)."""
    if fit["kind"] == "linear":
        return {k: fit[k] for k in (*_LINE_KEYS, *_ASSOCIATION_KEYS)}
    line = fit["linear"]
    out = {k: fit[k] for k in ("slope", "intercept", "r_squared", "loo_rmse", "residual_sd")}
    out |= {k: line[k] for k in _ASSOCIATION_KEYS}
    out |= {"slope_se": _hinge_se(fit, 1), "intercept_se": _hinge_se(fit, 0)}
    out |= {"breakpoint": fit["breakpoint"], "plateau": fit["plateau"]}
    out["linear"] = LineStats(**{k: line[k] for k in _LINE_KEYS})
    return out


def links(row: Predictor) -> dict[str, str]:
    """Links of a predictor: itself, its predictions, base model and matrix."""
    return {
        "self": f"/v1/predictors/{row.id}",
        "predictions": f"/v1/predictors/{row.id}/predictions",
        "base_model": f"/v1/models/{row.base_model_id}",
        "matrix": f"/v1/matrices?base_model_id={row.base_model_id}&method={row.method}",
    }


def existing_datasets(session: Session, project_id: str, rows: list[Predictor]) -> set[str]:
    """The datasets the predictors `rows` were fitted on that still exist."""
    ids = {p["dataset_id"] for row in rows for p in row.points}
    if not ids:
        return set()
    query = select(Dataset.id).where(Dataset.project_id == project_id, Dataset.id.in_(ids))
    return set(session.scalars(query))


def _evaluation_times(
    session: Session, project_id: str, base_model_id: str, method: str, split: str
) -> list[datetime]:
    """When each evaluation of the (base model, method) matrix on `split` was stored: every
    fine-tuned model's of that method, and the base model's zero-shot ones on the datasets
    those models were trained or evaluated on."""
    tuned = session.execute(
        select(Evaluation.dataset_id, Evaluation.created_at, FinetunedModel.train_dataset_id)
        .join(FinetunedModel, Evaluation.finetuned_model_id == FinetunedModel.id)
        .where(
            Evaluation.project_id == project_id, Evaluation.split == split,
            FinetunedModel.base_model_id == base_model_id, FinetunedModel.method == method,
        )
    ).all()  # fmt: skip
    datasets = {r.dataset_id for r in tuned} | {r.train_dataset_id for r in tuned}
    zero_shot = session.scalars(
        select(Evaluation.created_at).where(
            Evaluation.project_id == project_id, Evaluation.split == split,
            Evaluation.base_model_id == base_model_id, Evaluation.finetuned_model_id.is_(None),
            Evaluation.dataset_id.in_(datasets),
        )
    )  # fmt: skip
    return [r.created_at for r in tuned] + list(zero_shot)


def newer_evaluations(session: Session, project_id: str, rows: list[Predictor]) -> dict[str, int]:
    """Per predictor of `rows`, how many evaluations of its matrix were stored after it was
    fitted (or after a refit last found the same points, `checked_at`)."""
    times: dict[tuple[str, str, str], list[datetime]] = {}
    out = {}
    for row in rows:
        group = (row.base_model_id, row.method, row.split)
        if group not in times:
            times[group] = _evaluation_times(session, project_id, *group)
        since = row.checked_at or row.created_at
        out[row.id] = sum(1 for t in times[group] if t > since)
    return out


def read_all(session: Session, project_id: str, rows: list[Predictor]) -> list[PredictorRead]:
    """`rows` as returned by the API, each marked stale when a dataset it was fitted on is
    gone or evaluations of its matrix are newer than its fit."""
    existing = existing_datasets(session, project_id, rows)
    newer = newer_evaluations(session, project_id, rows)
    return [to_read(r, existing, newer.get(r.id, 0)) for r in rows]


def stale_reasons(session: Session, project_id: str, rows: list[Predictor]) -> dict[str, str]:
    """The stale ones among `rows`, each with its `stale_reason` (as `read_all` gives it)."""
    existing = existing_datasets(session, project_id, rows)
    newer = newer_evaluations(session, project_id, rows)
    out = {}
    for row in rows:
        missing = [p["dataset_id"] for p in row.points if p["dataset_id"] not in existing]
        if (why := stale_reason(missing, newer.get(row.id, 0))) is not None:
            out[row.id] = why
    return out


def stale_note(used: list[Predictor | None], reasons: dict[str, str]) -> str | None:
    """One sentence naming which of the predictors `used` for a prediction are stale and why
    (`reasons` from `stale_reasons`); None when none is."""
    parts = [f"{p.target} predictor {p.id} ({p.feature}) is stale: {reasons[p.id]}"
             for p in used if p is not None and p.id in reasons]  # fmt: skip
    return "; ".join(parts) or None


def stale_reason(missing: list[str], newer: int) -> str | None:
    """Why a predictor is stale, in one sentence with what to do; None when it is not."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} dataset(s) it was fitted on deleted ({', '.join(missing)})")
    if newer:
        parts.append(f"{newer} newer evaluation(s) since fitted")
    if not parts:
        return None
    return f"{'; '.join(parts)}: refit with POST /v1/predictors"


def to_read(row: Predictor, existing: set[str] | None = None, newer: int = 0) -> PredictorRead:
    """A predictor as returned by the API; `existing` (`existing_datasets`) marks it stale
    when a dataset it was fitted on is gone (None: not checked), `newer`
    (`newer_evaluations`) when its matrix has evaluations newer than the fit."""
    fit = row.fit
    names = [p["dataset_id"] for p in row.points]
    missing = [] if existing is None else [d for d in names if d not in existing]
    return PredictorRead(
        stale=bool(missing) or newer > 0, missing_dataset_ids=missing, newer_evaluations=newer,
        stale_reason=stale_reason(missing, newer),
        id=row.id, base_model_id=row.base_model_id, method=row.method, feature=row.feature,
        target=row.target, split=row.split, piecewise=row.piecewise,  # type: ignore[arg-type]
        model_form=row.kind, n=row.n,  # type: ignore[arg-type]
        fitted_range=FittedRange(min=fit["x_min"], max=fit["x_max"]),
        datasets=[p["dataset_id"] for p in row.points], points=row.points, skipped=row.skipped,
        created_at=row.created_at, links=links(row), **_stats(fit),
    )  # fmt: skip
