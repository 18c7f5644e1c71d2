"""The accuracy matrix of one (base model, method): rows = training dataset (plus zero-shot),
columns = evaluation dataset, cells = test top-1 accuracy; per row G and the ood change."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.imagedata.prompts import prompts_hash
from app.matrices.arithmetic import low_error_flag, row_figures
from app.models import Dataset, Embedding, Evaluation, FinetunedModel, PretrainedModel
from app.ownership import get_owned

SPLIT = "test"


@dataclass
class MatrixRow:
    """One fine-tuned model: its accuracy per evaluation dataset, G and the ood change."""

    train_dataset_id: str
    finetuned_model_id: str
    accuracies: dict[str, float]
    gain: float | None
    ood_change: float | None
    flag: str | None = None


@dataclass
class Matrix:
    """Columns `datasets` (ids, ordered by name), the zero-shot row and the fine-tuned rows."""

    base_model_id: str
    method: str
    datasets: list[str]
    zero_shot: dict[str, float]
    rows: list[MatrixRow]
    names: dict[str, str] = field(default_factory=dict)


def _top1(zero_shot: dict[str, object]) -> float | None:
    """The top-1 accuracy an embed job stored (as `workers.tasks.score.zero_shot_top1`)."""
    for key in ("top1", "accuracy", "zero_shot_accuracy", "acc1", "top1_accuracy"):
        value = zero_shot.get(key)
        if isinstance(value, int | float) and value == value:
            return float(value)
    return None


def _zero_shot(session: Session, project_id: str, base_model_id: str) -> dict[str, float]:
    """Zero-shot test accuracies: evaluations first, else the embed job's stored figures."""
    out: dict[str, float] = {}
    embeddings = session.scalars(
        select(Embedding).where(
            Embedding.project_id == project_id, Embedding.model_id == base_model_id,
            Embedding.split == SPLIT, Embedding.prompts_hash == prompts_hash(None),
        )
    )  # fmt: skip
    for emb in embeddings:
        if (acc := _top1(emb.zero_shot)) is not None:
            out[emb.dataset_id] = acc
    evaluations = session.scalars(
        select(Evaluation).where(
            Evaluation.project_id == project_id, Evaluation.model_ref == base_model_id,
            Evaluation.split == SPLIT,
        )
    )  # fmt: skip
    out.update({e.dataset_id: e.top1 for e in evaluations})
    return out


def _latest_finetuned(
    session: Session, project_id: str, base_model_id: str, method: str
) -> list[FinetunedModel]:
    """The newest ready fine-tuned model per training dataset."""
    rows = session.scalars(
        select(FinetunedModel)
        .where(
            FinetunedModel.project_id == project_id, FinetunedModel.base_model_id == base_model_id,
            FinetunedModel.method == method, FinetunedModel.status == "ready",
        )
        .order_by(FinetunedModel.id)
    )  # fmt: skip
    latest = {row.train_dataset_id: row for row in rows}
    return list(latest.values())


def _accuracies(session: Session, ids: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {i: {} for i in ids}
    if ids:
        query = select(Evaluation).where(Evaluation.model_ref.in_(ids), Evaluation.split == SPLIT)
        for e in session.scalars(query):
            out[e.model_ref][e.dataset_id] = e.top1
    return out


def _same_content(session: Session, project_id: str) -> dict[str, set[str]]:
    """For each dataset of the project sharing its content fingerprint with others, those
    others (duplicates registered with `allow_duplicate`)."""
    groups: dict[str, set[str]] = {}
    query = select(Dataset.id, Dataset.fingerprint).where(Dataset.project_id == project_id)
    for dataset_id, fingerprint in session.execute(query):
        groups.setdefault(fingerprint, set()).add(dataset_id)
    return {d: group - {d} for group in groups.values() if len(group) > 1 for d in group}


def build_matrix(
    session: Session,
    *,
    project_id: str,
    base_model_id: str,
    method: str,
    min_zero_shot_error: float | None = None,
) -> Matrix:
    """The accuracy matrix of `base_model_id` fine-tuned with `method` (404 for another
    project's model); G and the ood change come from `app.matrices.arithmetic`. Rows whose
    zero-shot error is below `min_zero_shot_error` (default: the setting) carry a flag."""
    if min_zero_shot_error is None:
        min_zero_shot_error = get_settings().min_zero_shot_error
    get_owned(session, PretrainedModel, base_model_id, project_id, "model")
    zero_shot = _zero_shot(session, project_id, base_model_id)
    tuned = _latest_finetuned(session, project_id, base_model_id, method)
    accuracies = _accuracies(session, [t.id for t in tuned])
    twins = _same_content(session, project_id)
    rows = []
    for t in tuned:
        same = twins.get(t.train_dataset_id, set())
        gain, ood = row_figures(accuracies[t.id], zero_shot, t.train_dataset_id, same)
        flag = low_error_flag(zero_shot.get(t.train_dataset_id), min_zero_shot_error)
        rows.append(MatrixRow(t.train_dataset_id, t.id, accuracies[t.id], gain, ood, flag))
    used = (
        set(zero_shot)
        | {d for r in rows for d in r.accuracies}
        | {r.train_dataset_id for r in rows}
    )
    names = dict(
        session.execute(
            select(Dataset.id, Dataset.name).where(
                Dataset.project_id == project_id, Dataset.id.in_(used)
            )
        ).all()
    )
    columns = sorted(names, key=lambda i: (names[i], i))
    rows.sort(key=lambda r: (names.get(r.train_dataset_id, ""), r.train_dataset_id))
    return Matrix(base_model_id, method, columns, zero_shot, rows, names)
