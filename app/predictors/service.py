"""Predictor service: fit (synchronous: fits are tiny), list, get, delete. Flushes only."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import new_id
from app.errors import InvalidError, NotFoundError
from app.idempotency import insert_once, replay, request_hash
from app.measures.prediction import LinearFit, PiecewiseFit, fit_auto, fit_linear
from app.models import Dataset, PretrainedModel
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


#: Per-request cache of loaded matrices and scores (see `gather`).
Cache = dict[tuple[str, ...], Any]


def gather(
    session: Session,
    project_id: str,
    *,
    base_model_id: str,
    method: str,
    feature: str,
    target: str,
    dataset_ids: list[str] | None = None,
    cache: Cache | None = None,
) -> tuple[list[data.TrainingPoint], list[dict[str, str]], dict[str, Any]]:
    """The (dataset, x, y) points a fit with these parameters would use now, the fine-tuned
    tasks it leaves out and why, and the matrix rows (see `data.training_points`). `cache`
    shares the matrix and scores between calls of one request (a list's staleness check)."""
    cache = {} if cache is None else cache
    mkey = ("matrix", base_model_id, method)
    if mkey not in cache:
        matrix = data.load_matrix(
            session, project_id=project_id, base_model_id=base_model_id, method=method
        )
        cache[mkey] = data.finetuned_rows(matrix)
    rows = cache[mkey]
    skey = ("scores", base_model_id)
    if skey not in cache:
        cache[skey] = data.load_scores(session, project_id=project_id, model_id=base_model_id)
    points, skipped = data.training_points(
        rows, cache[skey], feature=feature, target=target, requested=dataset_ids
    )
    return points, skipped, rows


def _fitted(session: Session, project_id: str, body: PredictorCreate) -> Predictor:
    """A new (unsaved) predictor fitted on the matrix and the stored zero-shot scores."""
    get_owned(session, PretrainedModel, body.base_model_id, project_id, "model")
    check_feature(body.feature)
    check_method(body.method)
    if body.dataset_ids is not None:
        check_datasets(session, project_id, body.dataset_ids)
    cache: Cache = {}
    points, skipped, rows = gather(
        session, project_id, base_model_id=body.base_model_id, method=body.method,
        feature=body.feature, target=body.target, dataset_ids=body.dataset_ids, cache=cache,
    )  # fmt: skip
    unscored = data.too_few_scored(
        rows, cache[("scores", body.base_model_id)], model_id=body.base_model_id,
        feature=body.feature, target=body.target, n_points=len(points),
    )  # fmt: skip
    if unscored is not None:
        raise InvalidError(f"cannot fit {body.target} on {body.feature!r} for method "
                           f"{body.method!r}: {unscored}")  # fmt: skip
    fit = _fit(points, skipped, body)
    return Predictor(
        id=new_id("prd"), project_id=project_id, base_model_id=body.base_model_id,
        method=body.method, feature=body.feature, target=body.target, split=data.SPLIT,
        piecewise=body.piecewise, kind=fit.kind, n=fit.n, fit=fit.to_dict(),
        points=[{"dataset_id": p.dataset_id, "x": p.x, "y": p.y} for p in points],
        skipped=skipped,
    )  # fmt: skip


def _key(row: Predictor, points: list[tuple[str, float, float]]) -> str:
    return request_hash({"base_model_id": row.base_model_id, "method": row.method,
                         "feature": row.feature, "target": row.target, "split": row.split,
                         "piecewise": row.piecewise, "points": sorted(points)})  # fmt: skip


def fit_key(row: Predictor) -> str:
    """Hash of what determines a fit: base model, method, feature, target, split, piecewise
    and the (dataset, x, y) points. Two requests that fit the same points are one predictor."""
    return _key(row, [(p["dataset_id"], p["x"], p["y"]) for p in row.points])


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
        return same, "existing"
    row.idempotency_key, row.request_hash = idempotency_key, digest
    try:
        row, created = insert_once(session, row, digest)
    except IntegrityError:  # a concurrent request stored the same fit first
        if (same := _same_fit(session, project_id, row.fit_key)) is None:
            raise
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


@dataclass(frozen=True)
class Check:
    """How a predictor's stored points compare with those a refit with its own parameters
    (its datasets, feature, target, method, piecewise) would use now."""

    #: One line per stored point that a refit would see differently (value changed, or the
    #: task no longer usable, with why), in the order of the predictor's points.
    changed: list[str] = field(default_factory=list)
    #: The fine-tuned tasks of the matrix a fit cannot use now, and why.
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: Its datasets a refit can still use (what the refit command names).
    usable: list[str] = field(default_factory=list)
    #: A stored predictor fitted on the points a refit would use now (None: none yet).
    refitted_as: str | None = None


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def check(
    session: Session, project_id: str, row: Predictor, existing: set[str], cache: Cache
) -> Check:
    """`row` against the data now: the points a refit on its own datasets would gather
    (`gather`, the fit's own data path) compared with its stored ones."""
    points, skipped, _ = gather(
        session, project_id, base_model_id=row.base_model_id, method=row.method,
        feature=row.feature, target=row.target, cache=cache,
    )  # fmt: skip
    now = {p.dataset_id: p for p in points}
    why = {s["dataset_id"]: s["reason"] for s in skipped}
    changed, usable = [], []
    for p in row.points:
        d, cur = p["dataset_id"], now.get(p["dataset_id"])
        if d not in existing:
            changed.append(f"{d}: dataset deleted")
        elif cur is None:
            changed.append(f"{d}: {why.get(d, 'no longer a fine-tuned task of the matrix')}")
        else:
            usable.append(d)
            if not (_same(cur.x, p["x"]) and _same(cur.y, p["y"])):
                changed.append(f"{d}: (x, y) ({p['x']:.4g}, {p['y']:.4g}) is now "
                               f"({cur.x:.4g}, {cur.y:.4g})")  # fmt: skip
    refitted_as = None
    if changed and usable:
        key = _key(row, [(d, now[d].x, now[d].y) for d in usable])
        if (other := _same_fit(session, project_id, key)) is not None and other.id != row.id:
            refitted_as = other.id
    return Check(changed=changed, skipped=skipped, usable=usable, refitted_as=refitted_as)


def read_all(session: Session, project_id: str, rows: list[Predictor]) -> list[PredictorRead]:
    """`rows` as returned by the API, each marked stale when a refit with its own
    parameters would see different points (`check`)."""
    existing = existing_datasets(session, project_id, rows)
    cache: Cache = {}
    return [to_read(r, existing, check(session, project_id, r, existing, cache)) for r in rows]


def stale_reasons(session: Session, project_id: str, rows: list[Predictor]) -> dict[str, str]:
    """The stale ones among `rows`, each with its `stale_reason` (as `read_all` gives it)."""
    existing = existing_datasets(session, project_id, rows)
    cache: Cache = {}
    out = {}
    for row in rows:
        if (why := stale_reason(row, check(session, project_id, row, existing, cache))) is not None:
            out[row.id] = why
    return out


def stale_note(used: list[Predictor | None], reasons: dict[str, str]) -> str | None:
    """One sentence naming which of the predictors `used` for a prediction are stale and why
    (`reasons` from `stale_reasons`); None when none is."""
    parts = [f"{p.target} predictor {p.id} ({p.feature}) is stale: {reasons[p.id]}"
             for p in used if p is not None and p.id in reasons]  # fmt: skip
    return "; ".join(parts) or None


def refit_body(row: Predictor, datasets: list[str]) -> dict[str, Any]:
    """The POST /v1/predictors body that refits `row` on `datasets` with its parameters."""
    return {"base_model_id": row.base_model_id, "method": row.method, "feature": row.feature,
            "target": row.target, "piecewise": row.piecewise, "dataset_ids": datasets}  # fmt: skip


def refit_command(row: Predictor, datasets: list[str]) -> str:
    """The `iimm predictors fit` command line of `refit_body`."""
    words = ["iimm predictors fit", f"--base-model-id {row.base_model_id}",
             f"--method {row.method}", f"--feature {row.feature}", f"--target {row.target}",
             f"--piecewise {row.piecewise}", *(f"--dataset-id {d}" for d in datasets)]  # fmt: skip
    return " ".join(words)


def stale_reason(row: Predictor, found: Check) -> str | None:
    """Why a predictor is stale and exactly how to refit it; None when it is not."""
    if not found.changed:
        return None
    shown = "; ".join(found.changed[:3]) + ("; …" if len(found.changed) > 3 else "")
    head = f"{len(found.changed)} of its {len(row.points)} point(s) changed since fitted ({shown})"
    if found.refitted_as is not None:
        return f"{head}: refitted as {found.refitted_as}"
    dropped = "" if len(found.usable) == len(row.points) else " it can still use"
    body = json.dumps(refit_body(row, found.usable), separators=(",", ":"))
    return (f"{head}: refit on the datasets{dropped} with the same options: "
            f"{refit_command(row, found.usable)} (POST /v1/predictors {body})")  # fmt: skip


def to_read(
    row: Predictor, existing: set[str] | None = None, found: Check | None = None
) -> PredictorRead:
    """A predictor as returned by the API; `existing` (`existing_datasets`) marks it stale
    when a dataset it was fitted on is gone (None: not checked), `found` (`check`) when a
    refit would see different points (None: not checked)."""
    fit = row.fit
    names = [p["dataset_id"] for p in row.points]
    missing = [] if existing is None else [d for d in names if d not in existing]
    changed = len(found.changed) if found is not None else len(missing)
    reason = stale_reason(row, found) if found is not None else (
        f"{len(missing)} dataset(s) it was fitted on deleted ({', '.join(missing)})"
        if missing else None)  # fmt: skip
    return PredictorRead(
        stale=changed > 0, missing_dataset_ids=missing, changed_points=changed,
        stale_reason=reason, refitted_as=None if found is None or not found.changed else (
            found.refitted_as),
        id=row.id, base_model_id=row.base_model_id, method=row.method, feature=row.feature,
        target=row.target, split=row.split, piecewise=row.piecewise,  # type: ignore[arg-type]
        model_form=row.kind, n=row.n,  # type: ignore[arg-type]
        fitted_range=FittedRange(min=fit["x_min"], max=fit["x_max"]),
        datasets=names, points=row.points,
        skipped=row.skipped if found is None else found.skipped,  # type: ignore[arg-type]
        created_at=row.created_at, links=links(row), **_stats(fit),
    )  # fmt: skip
