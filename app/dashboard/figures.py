"""The two figures people look at, built from the service's own read models: a predictor's
fit (paper Fig. 1: gain against IIMM with the fitted line) and the accuracy matrix."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.dashboard.svg import fit_svg, heatmap_svg
from app.matrices.service import Matrix
from app.models import Dataset
from app.predictors.schemas import PredictorRead

SVG = "image/svg+xml"
TARGET_LABELS = {
    "gain": "in-domain gain G = (acc_ft − acc_zs) / (1 − acc_zs)",
    "ood_change": "out-of-domain change (mean acc_ft − acc_zs)",
}


def wants(format: str | None, accept: str | None, name: str, media_type: str) -> bool:
    """Whether a GET asks for the `name` representation: ``?format=`` wins over Accept."""
    return format == name or (format is None and media_type in (accept or ""))


def dataset_names(session: Session, project_id: str, ids: list[str]) -> dict[str, str]:
    """{dataset id: name} for the caller's datasets among `ids` (deleted ones keep their id)."""
    rows = session.execute(
        select(Dataset.id, Dataset.name).where(Dataset.project_id == project_id,
                                               Dataset.id.in_(ids))
    )  # fmt: skip
    return {i: n for i, n in rows}


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


def predictor_svg(p: PredictorRead, names: Mapping[str, str]) -> str:
    """Scatter of the predictor's training tasks with its fitted line and statistics."""
    stats = [f"n = {p.n}", f"form: {p.model_form}"]
    for label, value in (("R²", p.r_squared), ("Spearman ρ", p.spearman_rho),
                         ("LOO RMSE", p.loo_rmse)):  # fmt: skip
        if value is not None:
            stats.append(f"{label} = {value:.3f}")
    points = [(names.get(pt.dataset_id, pt.dataset_id), pt.x, pt.y) for pt in p.points]
    return fit_svg(
        points, fit_curve(p), x_label=p.feature, y_label=TARGET_LABELS.get(p.target, p.target),
        title=f"{p.target} vs {p.feature} — {p.method}, base model {p.base_model_id}",
        note=", ".join(stats),
    )  # fmt: skip


def matrix_svg(m: Matrix) -> str:
    """The accuracy matrix as a heat map: the zero-shot row, then one row per fine-tuned
    model (its training dataset), one column per evaluation dataset; G and the
    out-of-domain change at the right of each row."""
    columns = [m.names.get(i, i) for i in m.datasets]
    rows = ["zero-shot"] + [m.names.get(r.train_dataset_id, r.train_dataset_id) for r in m.rows]
    cells = [[m.zero_shot.get(i) for i in m.datasets]]
    cells += [[r.accuracies.get(i) for i in m.datasets] for r in m.rows]
    notes = [""] + [_row_note(r.gain, r.ood_change) for r in m.rows]
    title = f"Test top-1 accuracy — {m.method}, base model {m.base_model_id}"
    return heatmap_svg(rows, columns, cells, row_notes=notes, title=title)


def _row_note(gain: float | None, ood: float | None) -> str:
    parts = []
    if gain is not None:
        parts.append(f"G {gain:+.2f}")
    if ood is not None:
        parts.append(f"OOD {ood:+.3f}")
    return "  ".join(parts)
