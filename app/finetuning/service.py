"""Reading fine-tuned models and evaluations (rows are written only by the worker jobs)."""

from __future__ import annotations

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from app.models import Dataset, Evaluation, FinetunedModel, PretrainedModel
from app.ownership import get_owned
from app.pagination import page


def get_finetuned(*, session: Session, project_id: str, finetuned_id: str) -> FinetunedModel:
    """The project's fine-tuned model `finetuned_id` (404 otherwise)."""
    return get_owned(session, FinetunedModel, finetuned_id, project_id, "fine-tuned model")


def list_finetuned(
    *, session: Session, project_id: str, filters: dict[str, str | None], cursor: str | None,
    limit: int,
) -> tuple[list[FinetunedModel], str | None]:  # fmt: skip
    """A page of fine-tuned models, oldest first, filtered by base model/method/dataset."""
    query = select(FinetunedModel).where(FinetunedModel.project_id == project_id)
    for name, value in filters.items():
        if value is not None:
            query = query.where(getattr(FinetunedModel, name) == value)
    return page(session, query, FinetunedModel.id, cursor, limit, newest_first=False)


def list_evaluations(
    *, session: Session, project_id: str, filters: dict[str, str | None], cursor: str | None,
    limit: int,
) -> tuple[list[Evaluation], str | None]:  # fmt: skip
    """A page of evaluations; `model_id` matches a base (zero-shot) or fine-tuned model id."""
    query = select(Evaluation).where(Evaluation.project_id == project_id)
    columns = {"model_id": Evaluation.model_ref, "dataset_id": Evaluation.dataset_id,
               "split": Evaluation.split, "base_model_id": Evaluation.base_model_id}  # fmt: skip
    for name, value in filters.items():
        if value is not None:
            query = query.where(columns[name] == value)
    return page(session, query, Evaluation.id, cursor, limit, newest_first=False)


def ref_names(session: Session, rows: list[Evaluation]) -> dict[str, str]:
    """The names of the rows' base models and datasets by id, in one query for the page."""
    if not rows:
        return {}
    models = {r.base_model_id for r in rows}
    datasets = {r.dataset_id for r in rows}
    query = union_all(
        select(PretrainedModel.id, PretrainedModel.name).where(PretrainedModel.id.in_(models)),
        select(Dataset.id, Dataset.name).where(Dataset.id.in_(datasets)),
    )
    return dict(session.execute(query).all())  # rows are (key, value) tuples
