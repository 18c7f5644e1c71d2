"""The `evaluate` job: a base model (zero-shot) or a fine-tuned one on datasets' splits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import session_scope
from app.finetuning.params import EvaluateParams
from app.models import FinetunedModel
from workers.tasks.base import JobContext, JobError, Outcome
from workers.tasks.evaluation import (
    Target,
    base_model_row,
    dataset_rows,
    evaluate_all,
    evaluation_rows,
    load_base,
    replace_evaluations,
)
from workers.tasks.finetune import load_tuned


def _finetuned(ctx: JobContext, model_id: str) -> dict[str, Any] | None:
    with session_scope(ctx.sessions) as session:
        row = session.scalar(
            select(FinetunedModel).where(
                FinetunedModel.id == model_id, FinetunedModel.project_id == ctx.project_id
            )
        )
        if row is None:
            return None
        if row.checkpoint_uri is None:
            raise JobError(f"fine-tuned model {model_id} has no checkpoint")
        return {"base_model_id": row.base_model_id, "checkpoint_uri": row.checkpoint_uri}


def run_evaluate(ctx: JobContext) -> Outcome:
    """Evaluate; rows replace earlier ones of the same (model, dataset, split)."""
    p = EvaluateParams.model_validate({"type": "evaluate", **ctx.params})
    ft = _finetuned(ctx, p.model_id)
    base_id = ft["base_model_id"] if ft else p.model_id
    model_row = base_model_row(ctx, base_id)
    datasets = dataset_rows(ctx, p.dataset_ids)
    ctx.progress(0.0, "loading model")
    loaded = load_base(ctx, model_row)
    if ft is None:
        target = Target(base_id, None, loaded.model)
    else:
        target = Target(base_id, p.model_id, load_tuned(ctx, loaded, ft["checkpoint_uri"]))
    metrics, skipped = evaluate_all(ctx, loaded, target, datasets, p.split)
    rows = evaluation_rows(ctx, target, metrics, p.split)

    def write(session: Session) -> None:
        replace_evaluations(session, rows)

    result = {"model_id": p.model_id, "zero_shot": ft is None, "split": p.split,
              "metrics": metrics, "skipped": skipped}  # fmt: skip
    return Outcome(result, write)
