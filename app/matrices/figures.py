"""The accuracy matrix as a heat map: rows = training dataset (after the zero-shot row),
columns = evaluation dataset, the in-domain cells outlined, G and the out-of-domain change
at the right of each row (a flagged row marked, its reason as the mark's tooltip), a colour
scale and a key for cells never evaluated."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.matrices.service import Matrix
from app.models import PretrainedModel
from app.svg import heatmap_svg

#: The key of the mark on a flagged row (each mark's tooltip says the row's own reason).
FLAG_LABEL = "zero-shot error too small for a stable G: left out of gain fits"


def matrix_svg(m: Matrix, model: str) -> str:
    """The heat map of `m`, titled by its method and base model name `model`."""
    columns = [m.names.get(i, i) for i in m.datasets]
    rows = ["zero-shot"] + [m.names.get(r.train_dataset_id, r.train_dataset_id) for r in m.rows]
    cells = [[m.zero_shot.get(i) for i in m.datasets]]
    cells += [[r.accuracies.get(i) for i in m.datasets] for r in m.rows]
    notes = [""] + [_row_note(r.gain, r.ood_change) for r in m.rows]
    position = {d: j for j, d in enumerate(m.datasets)}
    diagonal = [(i + 1, position[r.train_dataset_id]) for i, r in enumerate(m.rows)
                if r.train_dataset_id in position]  # fmt: skip
    return heatmap_svg(
        rows, columns, cells, row_notes=notes,
        title=f"Test top-1 accuracy · {m.method} · {model}",
        subtitle=f"{len(m.rows)} fine-tuned model(s); G and OOD change (< 0: forgotten) at right",
        row_title="training dataset", column_title="evaluation dataset (test split)",
        highlight=diagonal, highlight_label="in-domain: evaluated on its training dataset",
        missing_label="not evaluated (run an evaluate job)", value_label="test top-1 accuracy",
        row_flags=[""] + [r.flag or "" for r in m.rows], flag_label=FLAG_LABEL,
    )  # fmt: skip


def figure(session: Session, m: Matrix) -> str:
    """The SVG heat map of a built matrix (the base model named as registered)."""
    model = session.scalar(
        select(PretrainedModel.name).where(PretrainedModel.id == m.base_model_id)
    )
    return matrix_svg(m, model or m.base_model_id)


def _row_note(gain: float | None, ood: float | None) -> str:
    parts = []
    if gain is not None:
        parts.append(f"G {gain:+.2f}")
    if ood is not None:
        parts.append(f"OOD {ood:+.3f}")
    return "  ".join(parts)
