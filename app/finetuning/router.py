"""`/v1/finetuned-models` and `/v1/evaluations`: what `finetune` and `evaluate` jobs stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import CurrentPrincipal, CursorQuery, SessionDep, TransactionalRoute
from app.errors import problems
from app.finetuning import service
from app.finetuning.schemas import (
    EvaluationList,
    EvaluationRead,
    FinetunedModelList,
    FinetunedModelRead,
)
from app.models import Evaluation

router = APIRouter(route_class=TransactionalRoute)
IdQuery = Annotated[str | None, Query(max_length=40)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get(
    "/v1/finetuned-models",
    tags=["finetuned-models"],
    response_model=FinetunedModelList,
    responses=problems(),
)
def list_finetuned_models(
    session: SessionDep,
    principal: CurrentPrincipal,
    base_model_id: IdQuery = None,
    method: IdQuery = None,
    train_dataset_id: IdQuery = None,
    cursor: CursorQuery = None,
    limit: Limit = 100,
) -> FinetunedModelList:
    """The project's fine-tuned models, filtered by base model, method and training dataset."""
    filters = {"base_model_id": base_model_id, "method": method,
               "train_dataset_id": train_dataset_id}  # fmt: skip
    rows, nxt = service.list_finetuned(
        session=session, project_id=principal.project_id, filters=filters, cursor=cursor,
        limit=limit,
    )  # fmt: skip
    return FinetunedModelList(
        items=[FinetunedModelRead.model_validate(r) for r in rows], next_cursor=nxt
    )


@router.get(
    "/v1/finetuned-models/{finetuned_id}",
    tags=["finetuned-models"],
    response_model=FinetunedModelRead,
    responses=problems(404),
)
def get_finetuned_model(
    finetuned_id: str, session: SessionDep, principal: CurrentPrincipal
) -> FinetunedModelRead:
    """One fine-tuned model: base model, method, hyperparameters, best epoch, checkpoint."""
    row = service.get_finetuned(
        session=session, project_id=principal.project_id, finetuned_id=finetuned_id
    )
    return FinetunedModelRead.model_validate(row)


def _evaluation(row: Evaluation, names: dict[str, str]) -> EvaluationRead:
    return EvaluationRead(
        id=row.id, model_id=row.model_ref, base_model_id=row.base_model_id,
        base_model_name=names[row.base_model_id], finetuned_model_id=row.finetuned_model_id,
        dataset_id=row.dataset_id, dataset_name=names[row.dataset_id], split=row.split,
        top1=row.top1, top5=row.top5, mean_per_class_recall=row.mean_per_class_recall,
        per_class_recall=row.per_class_recall or [], n=row.n,
        job_id=row.job_id, created_at=row.created_at,
    )  # fmt: skip


@router.get(
    "/v1/evaluations", tags=["evaluations"], response_model=EvaluationList, responses=problems()
)
def list_evaluations(
    session: SessionDep,
    principal: CurrentPrincipal,
    model_id: Annotated[
        str | None, Query(max_length=40, description="A base (zero-shot) or fine-tuned model")
    ] = None,
    base_model_id: IdQuery = None,
    dataset_id: Annotated[
        str | None,
        Query(max_length=40, description="Only the evaluations on this dataset (`dst_…`)"),
    ] = None,
    split: Annotated[str | None, Query(max_length=40)] = None,
    cursor: CursorQuery = None,
    limit: Limit = 200,
) -> EvaluationList:
    """Stored accuracies (top-1, top-5, mean per-class recall) of models on dataset splits."""
    filters = {"model_id": model_id, "base_model_id": base_model_id, "dataset_id": dataset_id,
               "split": split}  # fmt: skip
    rows, nxt = service.list_evaluations(
        session=session, project_id=principal.project_id, filters=filters, cursor=cursor,
        limit=limit,
    )  # fmt: skip
    names = service.ref_names(session, rows)
    return EvaluationList(items=[_evaluation(r, names) for r in rows], next_cursor=nxt)
