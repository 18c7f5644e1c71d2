"""The `finetune` and `evaluate` job types: parameters, reference checks at submission, links."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidError, NotFoundError
from app.finetuning.arch import unsupported_reason
from app.finetuning.params import (
    METHOD_GRID_AXES,
    EvaluateParams,
    FinetuneParams,
    FinetunePointParams,
    grid_size,
)
from app.jobtype import JobResult, JobType, NamedResult, require_split
from app.models import Dataset, FinetunedModel, PretrainedModel
from app.ownership import get_owned


class GridTooLargeError(InvalidError):
    """A hyperparameter grid with more points than the bound allows."""


def _base_model(session: Session, project_id: str, model_id: str) -> PretrainedModel:
    return get_owned(session, PretrainedModel, model_id, project_id, "model")


def _datasets(session: Session, project_id: str, ids: list[str]) -> list[Dataset]:
    rows = {
        d.id: d
        for d in session.scalars(
            select(Dataset).where(Dataset.project_id == project_id, Dataset.id.in_(ids))
        )
    }
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFoundError(f"dataset {missing[0]} not found")
    return [rows[i] for i in ids]


def _check_method(params: FinetuneParams) -> None:
    if params.method not in METHOD_GRID_AXES:
        raise InvalidError(
            f"unknown fine-tuning method {params.method!r}; valid methods: "
            f"{sorted(METHOD_GRID_AXES)}"
        )
    hp = params.hyperparameters
    if hp.grid is not None:
        empty = [a for a, v in hp.grid.model_dump().items() if v == []]
        if empty:
            raise InvalidError(f"grid axes {empty} are empty; give values or null")
    size, shape = grid_size(params.method, hp)
    if size > hp.max_grid_points:
        raise GridTooLargeError(
            f"grid has {size} points ({shape}), more than max_grid_points={hp.max_grid_points}"
        )


def check_finetune(session: Session, project_id: str, params: BaseModel) -> None:
    """Method, grid bound, base model, training dataset (with a train split), targets."""
    assert isinstance(params, FinetuneParams)
    _check_method(params)
    model = _base_model(session, project_id, params.model_id)
    if (reason := unsupported_reason(model.arch, params.method)) is not None:
        raise InvalidError(f"model {model.id}: {reason}")
    (train,) = _datasets(session, project_id, [params.dataset_id])
    require_split(train, "train", "fine-tuning needs one")
    if train.splits and train.splits["train"] < 2:
        raise InvalidError(f"dataset {train.id} has fewer than 2 training samples")
    for target in _datasets(session, project_id, list(params.evaluate_on or [])):
        require_split(target, "test", "evaluation uses the test split")


def check_evaluate(session: Session, project_id: str, params: BaseModel) -> None:
    """The model (base or fine-tuned) and every dataset exist in the project, with the split."""
    assert isinstance(params, EvaluateParams)
    ft = session.scalar(
        select(FinetunedModel.id).where(
            FinetunedModel.id == params.model_id, FinetunedModel.project_id == project_id
        )
    )
    if ft is None:
        _base_model(session, project_id, params.model_id)
    for target in _datasets(session, project_id, list(params.dataset_ids or [])):
        require_split(target, params.split, "the split to evaluate")


def _finetune_links(
    job_id: str, params: dict[str, Any], result: dict[str, Any] | None
) -> dict[str, str]:
    out = {
        "model": f"/v1/models/{params['model_id']}",
        "dataset": f"/v1/datasets/{params['dataset_id']}",
        "matrix": f"/v1/matrices?base_model_id={params['model_id']}"
        f"&method={params.get('method', 'full')}",
    }
    if result and result.get("finetuned_model_id"):
        ftm = result["finetuned_model_id"]
        out["finetuned_model"] = f"/v1/finetuned-models/{ftm}"
        out["evaluations"] = f"/v1/evaluations?model_id={ftm}"
    return out


def _evaluate_links(
    job_id: str, params: dict[str, Any], result: dict[str, Any] | None
) -> dict[str, str]:
    return {"evaluations": f"/v1/evaluations?model_id={params['model_id']}"}


class FinetuneResult(NamedResult):
    """A `finetune` job's outcome: the fine-tuned model, its training history and accuracies."""

    type: Literal["finetune"] = "finetune"
    finetuned_model_id: str
    method: str
    config: dict[str, Any] = Field(description="The training settings used (after the grid).")
    best_epoch: int
    best_val_acc: float | None = Field(description="Validation top-1 (0..1) at `best_epoch`.")
    history: list[dict[str, Any]] = Field(description="Per epoch: loss, val_acc, lr, ...")
    trainable_params: int
    resumed_from_epoch: int
    grid: list[dict[str, Any]] | None = None
    test_top1: dict[str, float | None] = Field(
        description="Fine-tuned top-1 (0..1) on each evaluated dataset's test split, by id."
    )
    zero_shot_top1: dict[str, float | None] = Field(
        description="The base model's zero-shot top-1 on the same datasets, by id."
    )
    skipped: dict[str, str] = Field(default_factory=dict, description="Dataset id: reason.")


class EvaluateResult(JobResult):
    """An `evaluate` job's accuracies per dataset id (rows of `/v1/evaluations`)."""

    type: Literal["evaluate"] = "evaluate"
    model_id: str
    base_model_name: str | None = Field(
        default=None, description="The name of the base model (`model_id` or its base)."
    )
    dataset_names: dict[str, str] = Field(
        default_factory=dict, description="Each evaluated dataset's name, by id."
    )
    zero_shot: bool = Field(description="True when `model_id` is a base model.")
    split: str
    metrics: dict[str, dict[str, Any]] = Field(
        description="Per dataset id: top1, top5, mean_per_class_recall, n, per_class_recall."
    )
    skipped: dict[str, str] = Field(default_factory=dict, description="Dataset id: reason.")


FINETUNE = JobType(
    "finetune", FinetuneParams, "gpu", check_finetune, _finetune_links, result=FinetuneResult
)
FINETUNE_POINT = JobType("finetune_point", FinetunePointParams, "gpu", internal=True)
EVALUATE = JobType(
    "evaluate", EvaluateParams, "gpu", check_evaluate, _evaluate_links, result=EvaluateResult
)
