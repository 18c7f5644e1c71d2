"""Comparisons of every stored measure as a predictor, and rankings of models for a dataset."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.basemodels import service as models_service
from app.comparisons.schemas import (
    ComparisonRead,
    FlaggedTask,
    IimmPrediction,
    MeasureComparisonRead,
    RankingItem,
    RankingRead,
    Unranked,
    ZeroShotPrediction,
)
from app.errors import InvalidError
from app.measures.prediction import (
    Candidate,
    ImpliedAccuracy,
    MeasureComparison,
    Prediction,
    compare_measures,
    fit_from_dict,
    rank_candidates,
)
from app.models import PretrainedModel
from app.models.predictors import Predictor
from app.predictors import data
from app.predictors import service as predictors_service
from app.predictors.choice import (
    MIN_TASKS,
    PREFERRED_FEATURE,
    NoComparison,
    RankBy,
    headline,
    newest,
    ood_change_by,
    pick_gain_predictor,
)
from app.predictors.predictions import assess_request, prediction_of
from app.predictors.schemas import Interval

#: NCTI, combined from its stored raw terms across the project's base models per dataset.
NCTI = "ncti"


def _measure_order(scores: dict[str, data.TaskScores]) -> list[str]:
    from app.measures import ALL_MEASURES
    from app.measures.registry import NCTI_TERMS

    order = {name: i for i, name in enumerate(ALL_MEASURES)}
    order[NCTI] = order[NCTI_TERMS[0]] - 0.5
    names = {m for task in scores.values() for m in task.measures}
    if any(t in names for t in NCTI_TERMS):
        names.add(NCTI)
    return [*sorted(names, key=lambda m: (order.get(m, len(order)), m)), data.ZERO_SHOT]


def baseline_variant(measure: str) -> str | None:
    """The variant the service computed `measure` with (None for the non-baselines)."""
    from app.measures import BASELINE_VARIANT
    from app.measures.registry import BASELINES

    return BASELINE_VARIANT if measure in BASELINES or measure == NCTI else None


def _ncti_values(
    session: Session, project_id: str, base_model_id: str, dataset_ids: list[str]
) -> tuple[dict[str, float], list[str]]:
    """NCTI of the base model on each dataset, relative to the project's base models.

    On each dataset, every base model of the project whose three raw terms (``ncti_seli``,
    ``ncti_ncc``, ``ncti_vc``) are stored and finite is a candidate; with at least 2
    candidates (this model among them), each term is min-max normalised across them and
    NCTI = S_seli + S_ncc - S_vc (Wang et al., 2023; :func:`ncti_from_terms`). Returns
    the values and every base model that served as a candidate.
    """
    from app.measures.registry import NCTI_TERMS
    from app.measures.transferability import NCTITerms, ncti_from_terms
    from app.models import Score

    rows = session.scalars(
        select(Score).where(
            Score.project_id == project_id,
            Score.split == data.SPLIT,
            Score.dataset_id.in_(dataset_ids),
            Score.measure.in_(NCTI_TERMS),
        )
    )
    terms: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in rows:
        per_model = terms.setdefault(row.dataset_id, {}).setdefault(row.model_id, {})
        per_model[row.measure] = data.finite(row.value)
    values: dict[str, float] = {}
    candidates: set[str] = set()
    for dataset_id, per_model in terms.items():
        complete = {
            model: NCTITerms(*(found[t] for t in NCTI_TERMS))  # type: ignore[arg-type]
            for model, found in sorted(per_model.items())
            if all(found.get(t) is not None for t in NCTI_TERMS)
        }
        if base_model_id not in complete or len(complete) < 2:
            continue
        models = list(complete)
        scores = ncti_from_terms([complete[m] for m in models])
        values[dataset_id] = scores[models.index(base_model_id)]
        candidates.update(models)
    return values, sorted(candidates)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _read(
    c: MeasureComparison, names: list[str], relative_to: list[str] | None = None
) -> MeasureComparisonRead:
    def out(v: float) -> float | None:
        return v if math.isfinite(v) else None

    return MeasureComparisonRead(
        measure=c.measure, variant=baseline_variant(c.measure), relative_to=relative_to,
        n=c.n, spearman_gain=out(c.spearman_gain),
        spearman_gain_pvalue=out(c.spearman_gain_pvalue),
        spearman_accuracy=out(c.spearman_accuracy),
        spearman_accuracy_pvalue=out(c.spearman_accuracy_pvalue),
        r_squared=out(c.r_squared), slope_pvalue=out(c.slope_pvalue),
        datasets_missing=[names[i] for i in c.missing],
    )  # fmt: skip


def _usable_rows(matrix: Any) -> dict[str, Any]:
    rows = data.finetuned_rows(matrix)
    return {
        d: r
        for d, r in sorted(rows.items())
        if data.target_of(r, "gain") is not None
        and data.finetuned_accuracy(r) is not None
        and not r.flag
    }


def verdict(items: list[MeasureComparisonRead], n: int) -> str | None:
    """One sentence: the best measure by |ρ vs G|, and IIMM and zero-shot accuracy beside it."""
    if not items:
        return None

    def said(c: MeasureComparisonRead) -> str:
        if c.spearman_gain is None:
            return f"{c.measure} undefined"
        p = "" if c.spearman_gain_pvalue is None else f", p {c.spearman_gain_pvalue:.3f}"
        return f"{c.measure} ρ {c.spearman_gain:+.2f}{p}"

    best, named = items[0], {c.measure: c for c in items}
    others = [said(named[m]) for m in ("iimm", data.ZERO_SHOT) if m in named and m != best.measure]
    tail = f" (beside it: {'; '.join(others)})" if others else ""
    return f"over {n} tasks {best.measure} predicts G best ({said(best)}){tail}"


def compare(
    *, session: Session, project_id: str, base_model_id: str, method: str
) -> ComparisonRead:
    """Spearman ρ (and p) of each stored measure vs G and vs fine-tuned accuracy, and R²."""
    models_service.get_model(session=session, project_id=project_id, model_id=base_model_id)
    predictors_service.check_method(method)
    found = _compare(session, project_id, base_model_id, method)
    if isinstance(found, NoComparison):
        raise InvalidError(
            f"comparing measures needs at least {MIN_TASKS} fine-tuned and evaluated tasks of "
            f"base model {base_model_id} with method {method!r}, got {found.tasks}: "
            f"{MIN_TASKS - found.tasks} more fine-tuned task(s) needed"
        )
    return found


def _compare(
    session: Session, project_id: str, base_model_id: str, method: str
) -> ComparisonRead | NoComparison:
    """`compare` once its arguments are checked; NoComparison with fewer than MIN_TASKS tasks."""
    matrix = data.load_matrix(
        session, project_id=project_id, base_model_id=base_model_id, method=method
    )
    rows = _usable_rows(matrix)
    names = list(rows)
    flagged = [
        FlaggedTask(
            dataset_id=r.train_dataset_id,
            dataset_name=matrix.names.get(r.train_dataset_id),
            reason=r.flag,
        )
        for r in matrix.rows
        if r.flag
    ]
    if len(names) < MIN_TASKS:
        return NoComparison(tasks=len(names))
    scores = data.load_scores(
        session, project_id=project_id, model_id=base_model_id, dataset_ids=names
    )
    gain = [data.target_of(rows[d], "gain") for d in names]
    accuracy = [data.finetuned_accuracy(rows[d]) for d in names]
    ncti, ncti_models = _ncti_values(session, project_id, base_model_id, names)
    items, skipped = [], []
    for measure in _measure_order(scores):
        if measure == NCTI:
            values = [_nan(ncti.get(d)) for d in names]
        else:
            values = [_nan(scores[d].value(measure) if d in scores else None) for d in names]
        try:
            found = compare_measures({measure: values}, gain, accuracy, names=names)
        except ValueError as exc:
            reason = str(exc)
            defined = sum(1 for v in values if math.isfinite(v))
            if measure != NCTI and (few := data.too_few_scored(
                rows, scores, model_id=base_model_id, feature=measure, target="gain",
                n_points=defined, minimum=MIN_TASKS,
            )):  # fmt: skip
                reason = f"comparing measures needs scores: {few}"
            if measure == NCTI and not ncti:
                reason = (
                    "NCTI is relative to a set of candidate models: store ncti_seli, ncti_ncc "
                    "and ncti_vc for at least 2 base models on the same datasets"
                )
            skipped.append({"measure": measure, "reason": reason})
            continue
        items.append(_read(found[0], names, ncti_models if measure == NCTI else None))
    items.sort(key=lambda c: -abs(c.spearman_gain) if c.spearman_gain is not None else 1.0)
    return ComparisonRead(
        base_model_id=base_model_id, method=method, split=data.SPLIT, n_tasks=len(names),
        datasets=names, items=items, skipped=skipped,  # type: ignore[arg-type]
        best_measure=items[0].measure if items else None, verdict=verdict(items, len(names)),
        flagged=flagged,
    )  # fmt: skip


def _interval(p: Prediction | ImpliedAccuracy) -> Interval:
    return Interval(value=p.value, lower=p.lower, upper=p.upper, level=p.level)


def comparison_for_choice(
    session: Session, project_id: str, base_model_id: str, method: str
) -> ComparisonRead | NoComparison:
    """The comparison of (base model, method) when it ranks a measure; else what keeps it from
    ranking any (the usable fine-tuned tasks, and how many of them have zero-shot scores)."""
    found = _compare(session, project_id, base_model_id, method)
    if isinstance(found, NoComparison) or found.items:
        return found
    scored = data.load_scores(
        session, project_id=project_id, model_id=base_model_id, dataset_ids=found.datasets
    )
    return NoComparison(tasks=found.n_tasks, scored=len(scored))


def _candidates_of(
    model: PretrainedModel,
    preds: list[Predictor],
    task: data.TaskScores,
    by: RankBy,
    comparison_of: Callable[[str], ComparisonRead | NoComparison],
    stale: Collection[str],
) -> tuple[list[tuple[Candidate, dict[str, Any]]], list[Unranked]]:
    """One candidate per method with a usable gain predictor; the rest as unranked. A fresh
    predictor is preferred to a stale one (`stale`: their ids) on the same measure."""
    usable = [p for p in preds if task.value(p.feature) is not None]
    chosen = headline(usable, stale)
    beside = {
        feature: newest((p for p in usable if p.feature == feature), stale)
        for feature in (data.ZERO_SHOT, PREFERRED_FEATURE)
    }
    out, unranked = [], []
    for method in sorted({p.method for p in preds}):
        gains = [p for p in usable if p.method == method and p.target == "gain"]
        gp, why = pick_gain_predictor(by, gains, method, comparison_of, stale)
        fp = chosen.get((method, "ood_change"))
        if gp is None or task.zero_shot_accuracy is None:
            if gp is not None:
                why = "no zero-shot accuracy stored for this dataset"
            unranked.append(Unranked(base_model_id=model.id, base_model_name=model.name,
                                     method=method, reason=why))  # fmt: skip
            continue
        x = task.value(gp.feature)
        assert x is not None
        candidate = Candidate(
            base_model=model.id, method=method, gain_fit=fit_from_dict(gp.fit), feature=x,
            acc_zs=task.zero_shot_accuracy,
            ood_change_fit=None if fp is None else fit_from_dict(fp.fit),
            ood_change_feature=None if fp is None else task.value(fp.feature),
        )  # fmt: skip
        zp = beside[data.ZERO_SHOT].get((method, "gain"))
        ip = beside[PREFERRED_FEATURE].get((method, "gain"))
        meta = {
            "model": model,
            "gain": gp,
            "why": why,
            "ood_change": fp,
            "x": x,
            "acc": task.zero_shot_accuracy,
            "iimm": task.value(PREFERRED_FEATURE),
            "zero_shot": None if zp is None or zp.id == gp.id else zp,
            "on_iimm": None if ip is None or ip.id == gp.id else ip,
        }
        out.append((candidate, meta))
    return out, unranked


def _gather(
    session: Session, project_id: str, dataset_id: str, by: RankBy
) -> tuple[list[tuple[Candidate, dict[str, Any]]], list[Unranked], dict[str, str]]:
    """The candidates, the unranked, and the stale predictors of the project with their
    reasons (known before choosing, so a fresh predictor is preferred to a stale one)."""
    models = session.scalars(
        select(PretrainedModel)
        .where(PretrainedModel.project_id == project_id)
        .order_by(PretrainedModel.id)
    )
    predictors = session.scalars(
        select(Predictor).where(Predictor.project_id == project_id).order_by(Predictor.id)
    ).all()
    stale = predictors_service.stale_reasons(session, project_id, list(predictors))
    grouped: dict[str, list[Predictor]] = {}
    for p in predictors:
        grouped.setdefault(p.base_model_id, []).append(p)
    candidates, unranked = [], []
    for model in models:
        if model.id not in grouped:
            why = "no predictor for this base model: fine-tune 3 tasks, then POST /v1/predictors"
            unranked.append(Unranked(base_model_id=model.id, base_model_name=model.name,
                                     method=None, reason=why))  # fmt: skip
            continue
        task = data.load_scores(
            session, project_id=project_id, model_id=model.id, dataset_ids=[dataset_id]
        ).get(dataset_id)
        if task is None:
            request = assess_request(model.id, dataset_id)
            why = f"no zero-shot scores for this dataset: submit {request}"
            unranked.append(Unranked(base_model_id=model.id, base_model_name=model.name,
                                     method=None, reason=why))  # fmt: skip
            continue
        found, left = _candidates_of(
            model, grouped[model.id], task, by,
            functools.partial(comparison_for_choice, session, project_id, model.id), stale,
        )  # fmt: skip
        candidates += found
        unranked += left
    return candidates, unranked, stale


def _beside(
    kind: type[ZeroShotPrediction],
    predictor: Predictor | None,
    x: float | None,
    acc_zs: float,
    level: float,
    stale: dict[str, str],
) -> Any:
    """A gain predictor's prediction at its feature `x`, shown beside the ranking's own (None
    without one, or when it cannot predict: its fit has no interval), flagged `stale` when the
    predictor is in `stale` (the stale predictors' reasons)."""
    if predictor is None or x is None:
        return None
    try:
        p = prediction_of(predictor, x=x, acc_zs=acc_zs, level=level)
    except InvalidError:
        return None
    return kind(
        predictor_id=predictor.id, gain=p.prediction, finetuned_accuracy=p.finetuned_accuracy,
        extrapolated=p.extrapolated, stale=predictor.id in stale,
    )  # fmt: skip


def rank(
    *, session: Session, project_id: str, dataset_id: str, level: float, by: RankBy = RankBy.best
) -> RankingRead:
    """The project's (base model, method) pairs by predicted fine-tuned accuracy on a dataset,
    each by the gain predictor `by` picks (`pick_gain_predictor`, shared with the assess job)."""
    dataset_name = predictors_service.check_datasets(session, project_id, [dataset_id])[dataset_id]
    gathered, unranked, stale = _gather(session, project_id, dataset_id, by)
    meta = {(c.base_model, c.method): m for c, m in gathered}
    try:
        ranked = rank_candidates([c for c, _ in gathered], level=level)
    except ValueError as exc:
        raise InvalidError(f"cannot rank: {exc}") from None
    items = []
    for r in ranked:
        m = meta[(r.base_model, r.method)]
        note = predictors_service.stale_note([m["gain"], m["ood_change"]], stale)
        items.append(RankingItem(
            rank=r.rank, base_model_id=r.base_model, base_model_name=m["model"].name,
            method=r.method, feature=m["gain"].feature,
            feature_variant=baseline_variant(m["gain"].feature), feature_value=m["x"],
            zero_shot_accuracy=m["acc"], finetuned_accuracy=_interval(r.accuracy),
            gain=_interval(r.gain), ood_change=None if r.ood_change is None else _interval(
                r.ood_change), extrapolated=r.gain.extrapolated, gain_predictor_id=m["gain"].id,
            ranked_by=m["why"],
            ood_change_predictor_id=None if m["ood_change"] is None else m["ood_change"].id,
            ood_change_by=ood_change_by(m["ood_change"], stale),
            gain_from_zero_shot_accuracy=_beside(
                ZeroShotPrediction, m["zero_shot"], m["acc"], m["acc"], level, stale),
            gain_from_iimm=_beside(
                IimmPrediction, m["on_iimm"], m["iimm"], m["acc"], level, stale),
            stale=note is not None, stale_reason=note,
        ))  # fmt: skip
    return RankingRead(
        dataset_id=dataset_id, dataset_name=dataset_name, level=level, by=by, items=items,
        unranked=unranked,
    )  # fmt: skip
