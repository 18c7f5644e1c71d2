"""A `finetune` job's final evaluation fanned out as `evaluate` child jobs.

When the job's `evaluate_on` datasets hold more than `evaluate_group_images` test images in
all (`workers.tasks.evaluate.size_groups` gives more than one group), the parent, once its
model is trained (serially, or as the grid's chosen point), records the fine-tuned model
(status ``evaluating``, left out of matrices), keeps its training summary beside the
checkpoint and creates one `evaluate` child per group for the fine-tuned model and one per
group for the zero-shot base model (``keep_existing``: only missing rows, as the serial
path's `add_missing_evaluations`). It waits holding no worker; once the children are final
it runs again, marks the model ``ready`` and gives the serial path's result. A child that
did not succeed fails the job, naming its datasets; the model and its fine-tuned rows are
removed with the job's failure, as with any other way the job ends failed or cancelled (its
worker, the reaper, a cancel: `app.jobs.children.drop_unfinished_models`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import new_id, session_scope
from app.finetuning.jobs import EVALUATE
from app.finetuning.params import FinetuneParams
from app.jobs.children import FINAL, children_of
from app.models import FinetunedModel, Job
from workers.tasks.base import JobCancelledError, JobContext, JobError, Outcome, Waiting
from workers.tasks.datasets import base_model_row, dataset_rows, ref_names
from workers.tasks.evaluate import gather, group_children, size_groups, waiting
from workers.tasks.training import (
    TRAIN_SHARE,
    _final_bytes,
    _record,
    checkpoint_key,
    checkpoint_store,
    keep_only_final,
)

#: The training summary (`FinetuneResult.to_dict()` and the job's additions) kept beside
#: ``final.pt`` while the evaluation children run; removed with the rest on success.
SUMMARY = "summary.json"
EVALUATING = "evaluating"


def evaluation_groups(ctx: JobContext, p: FinetuneParams) -> list[list[str]]:
    """The `evaluate_on` dataset ids in `evaluate` job groups (test split)."""
    targets = dataset_rows(ctx, p.evaluate_on)
    return size_groups(targets, "test", ctx.settings.evaluate_group_images)


def fan_out(
    ctx: JobContext, p: FinetuneParams, summary: dict[str, Any], groups: list[list[str]]
) -> Waiting:
    """Record the trained model (checkpoint ``final.pt`` under the job's key) as
    ``evaluating``, keep `summary`, and wait for the fine-tuned and zero-shot children."""
    from workers.ml.finetune.storage import as_store, write_bytes

    key = checkpoint_key(ctx.job_id)
    write_bytes(as_store(checkpoint_store(ctx, key)), SUMMARY, json.dumps(summary).encode())
    kept = _final_bytes(ctx, key)
    with session_scope(ctx.sessions) as session:
        record = session.scalar(select(FinetunedModel).where(FinetunedModel.job_id == ctx.job_id))
        if record is None:  # a rerun after the children were lost reuses its record
            record = _record(ctx, p, summary, new_id("ftm"))
            record.status = EVALUATING
            record.metrics = {**record.metrics, "checkpoint_bytes": kept}
            session.add(record)
        ft_id = record.id
    children = [*group_children(ft_id, groups, "test"),
                *group_children(p.model_id, groups, "test", keep_existing=True)]  # fmt: skip
    return waiting(0, len(children), children, TRAIN_SHARE)


def _why(failed: dict[str, str], names: dict[str, str], what: str) -> list[str]:
    return [f"{what} on dataset {names.get(d, d)} ({d}) {e}" for d, e in failed.items()]


def conclude_fanned(ctx: JobContext, p: FinetuneParams) -> Outcome | Waiting | None:
    """Wait for the evaluation children, or give the job's result once all are final;
    None when the job has none (its evaluation has not fanned out)."""
    from workers.ml.finetune.storage import as_store, read_bytes

    with session_scope(ctx.sessions) as session:
        kids = [k for k in children_of(session, ctx.job_id) if k.type == EVALUATE.name]
        if not kids:
            return None
        done = sum(k.status in FINAL for k in kids)
        if done < len(kids):
            return waiting(done, len(kids), [], TRAIN_SHARE)
        record = session.scalar(select(FinetunedModel).where(FinetunedModel.job_id == ctx.job_id))
        if record is None:
            if session.scalar(select(Job.cancel_requested).where(Job.id == ctx.job_id)):
                raise JobCancelledError  # a cancel removed it: the job ends cancelled
            raise JobError("the fine-tuned model was removed while it was being evaluated")
        ft_id, kept = record.id, record.metrics.get("checkpoint_bytes")
        tuned = gather([k for k in kids if k.params["model_id"] == ft_id])
        zero_shot = gather([k for k in kids if k.params["model_id"] != ft_id])
    if tuned.failed or zero_shot.failed:
        names = {d["id"]: d["name"] for d in dataset_rows(ctx, p.evaluate_on)}
        why = _why(tuned.failed, names, "fine-tuned evaluation")
        why += _why(zero_shot.failed, names, "zero-shot evaluation")
        # the job's failure removes the model and its rows, in the same transaction
        # (`claims.finish` → `drop_unfinished_models`)
        raise JobError(f"evaluation failed: {'; '.join(why)}"[:3000])
    key = checkpoint_key(ctx.job_id)
    blob = read_bytes(as_store(checkpoint_store(ctx, key)), SUMMARY)
    if blob is None:
        raise RuntimeError(f"{SUMMARY} of job {ctx.job_id} is missing")
    summary = json.loads(blob)
    (train_row,) = dataset_rows(ctx, [p.dataset_id])
    names = ref_names(base_model_row(ctx, p.model_id), train_row)

    def write(session: Session) -> None:
        row = session.get(FinetunedModel, ft_id)
        if row is None:
            raise JobError("the fine-tuned model was removed while it was being evaluated")
        row.status = "ready"

    out = {"finetuned_model_id": ft_id, **summary, **names,
           "test_top1": {k: v["top1"] for k, v in tuned.metrics.items()},
           "zero_shot_top1": {k: v["top1"] for k, v in zero_shot.metrics.items()},
           "skipped": tuned.skipped,
           "checkpoint_bytes": kept}  # fmt: skip
    return Outcome(out, write, after_commit=lambda: keep_only_final(ctx, key))
