"""A predictor's figure (paper Fig. 1): the fine-tuned tasks (feature against gain or the
out-of-domain change) with the fitted line over the fitted range and its 95% prediction
band, named by dataset and base model names."""

from __future__ import annotations

import math
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.measures.prediction import fit_from_dict, predict
from app.models import Dataset, PretrainedModel
from app.models.predictors import Predictor
from app.predictors.schemas import PredictorRead
from app.svg import fit_svg

TARGET_LABELS = {
    "gain": "in-domain gain G = (acc_ft − acc_zs) / (1 − acc_zs)",
    "ood_change": "out-of-domain change (mean acc_ft − acc_zs; < 0: forgotten)",
}
TARGET_SHORT = {"gain": "G", "ood_change": "OOD change"}
BAND_POINTS = 41


def fit_curve(p: PredictorRead) -> list[tuple[float, float]]:
    """The fitted line over the fitted range (a hinge: up to the breakpoint, then flat)."""
    if p.slope is None or p.intercept is None:
        return []
    lo, hi = p.fitted_range.min, p.fitted_range.max
    if p.model_form == "piecewise" and p.breakpoint is not None:
        knee = min(max(p.breakpoint, lo), hi)
        xs = sorted({lo, knee, hi})
        return [(x, p.intercept + p.slope * min(x, p.breakpoint)) for x in xs]
    return [(lo, p.intercept + p.slope * lo), (hi, p.intercept + p.slope * hi)]


def prediction_band(fit: dict, lo: float, hi: float) -> list[tuple[float, float, float]]:
    """(x, lower, upper) of the 95% prediction interval for a new task, from 10% of the
    fitted range below it to 10% above (so the widening outside it shows); empty when the
    fit has too few degrees of freedom for an interval."""
    fitted = fit_from_dict(fit)
    pad = 0.1 * (hi - lo) if hi > lo else 0.05
    xs = [lo - pad + (hi - lo + 2 * pad) * k / (BAND_POINTS - 1) for k in range(BAND_POINTS)]
    band = []
    for x in xs:
        try:
            pred = predict(fitted, x, level=0.95)
        except ValueError:
            return []
        if not (math.isfinite(pred.lower) and math.isfinite(pred.upper)):
            return []
        band.append((x, float(pred.lower), float(pred.upper)))
    return band


def _names(session: Session, project_id: str, p: PredictorRead) -> tuple[dict[str, str], str]:
    rows = session.execute(
        select(Dataset.id, Dataset.name).where(
            Dataset.project_id == project_id, Dataset.id.in_(p.datasets)
        )
    )
    model = session.scalar(
        select(PretrainedModel.name).where(PretrainedModel.id == p.base_model_id)
    )
    return {i: n for i, n in rows}, model or p.base_model_id


def predictor_svg(p: PredictorRead, fit: dict, names: Mapping[str, str], model: str) -> str:
    """Scatter of the predictor's training tasks with its fitted line, prediction band,
    fitted range and statistics; titled by target, feature, method, base model name, and
    told apart from other fits of the same kind by its fit date and id."""
    stats = [f"n = {p.n}", f"form: {p.model_form}"]
    for label, value in (("R²", p.r_squared), ("Spearman ρ", p.spearman_rho),
                         ("LOO RMSE", p.loo_rmse)):  # fmt: skip
        if value is not None:
            stats.append(f"{label} = {value:.3f}")
    points = [(names.get(pt.dataset_id, pt.dataset_id), pt.x, pt.y) for pt in p.points]
    fitted = f"{p.created_at:%Y-%m-%d %H:%M} UTC"
    return fit_svg(
        points, fit_curve(p), x_label=f"{p.feature} (zero-shot, base model)",
        y_label=TARGET_LABELS.get(p.target, p.target),
        title=f"{TARGET_SHORT.get(p.target, p.target)} vs {p.feature} · {p.method} · {model}",
        subtitle=f"fitted {fitted} · {p.id}", note=", ".join(stats),
        band=prediction_band(fit, p.fitted_range.min, p.fitted_range.max),
        fitted_range=(p.fitted_range.min, p.fitted_range.max),
    )  # fmt: skip


def figure(session: Session, project_id: str, row: Predictor, read: PredictorRead) -> str:
    """The SVG figure of a stored predictor (names looked up in the caller's project)."""
    names, model = _names(session, project_id, read)
    return predictor_svg(read, row.fit, names, model)
