"""The `evaluate` job: a base model (zero-shot) or a fine-tuned one on datasets' splits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import session_scope
from app.finetuning.jobs import EVALUATE
from app.finetuning.params import EvaluateParams
from app.jobs.children import FINAL, children_of
from app.jobtype import JobType
from app.models import FinetunedModel, Job, JobStatus
from workers.tasks.accuracy import (
    Target,
    add_missing_evaluations,
    evaluate_all,
    evaluation_rows,
    replace_evaluations,
)
from workers.tasks.base import JobContext, JobError, Outcome, Waiting
from workers.tasks.datasets import base_model_row, dataset_rows, load_base
from workers.tasks.training import load_tuned


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


def size_groups(datasets: list[dict[str, Any]], split: str, images: int) -> list[list[str]]:
    """Dataset ids in groups (in the given order) each closed once it holds `images` images
    of `split`: a large dataset is a group of its own, small ones share one model load."""
    groups: list[list[str]] = [[]]
    size = 0
    for dataset in datasets:
        if size >= images:
            groups.append([])
            size = 0
        groups[-1].append(dataset["id"])
        size += int((dataset.get("splits") or {}).get(split, 0))
    return [g for g in groups if g]


def _names(model: dict[str, Any], datasets: list[dict[str, Any]]) -> dict[str, Any]:
    """The names beside the ids in the result (no second call for a log or dashboard)."""
    return {
        "base_model_name": model["name"],
        "dataset_names": {d["id"]: d["name"] for d in datasets},
    }


def group_children(
    model_id: str, groups: list[list[str]], split: str, keep_existing: bool = False
) -> list[tuple[JobType, dict[str, Any]]]:
    """One `evaluate` child job per group of dataset ids, of `model_id` on `split` (with
    `keep_existing`: only the rows not stored yet are written, as a fine-tune's zero-shot)."""
    extra = {"keep_existing": True} if keep_existing else {}
    return [(EVALUATE, {"model_id": model_id, "dataset_ids": g, "split": split, **extra})
            for g in groups]  # fmt: skip


@dataclass(frozen=True)
class Gathered:
    """What `evaluate` children gave: metrics and skip reasons per dataset id (as one
    `evaluate` run's), and per dataset of a child that did not succeed, its status: error."""

    metrics: dict[str, dict[str, Any]]
    skipped: dict[str, str]
    failed: dict[str, str]


def gather(kids: list[Job]) -> Gathered:
    """Merge the results of final `evaluate` children (in the given order)."""
    metrics: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    for kid in kids:
        if kid.status == JobStatus.succeeded.value and kid.result:
            metrics |= kid.result["metrics"]
            skipped |= kid.result["skipped"]
        else:
            failed |= {d: f"{kid.status}: {kid.error}" for d in kid.params["dataset_ids"]}
    return Gathered(metrics, skipped, failed)


def waiting(done: int, total: int, children: list[tuple[JobType, dict[str, Any]]],
            start: float = 0.0) -> Waiting:  # fmt: skip
    """The parent's answer while `done` of `total` evaluation groups are final (the rest of
    the job's progress from `start`)."""
    detail = {"done": done, "total": total, "unit": "dataset groups"}
    progress = start + (1 - start) * done / max(total, 1)
    return Waiting("waiting for evaluations", children, progress, detail)


def _fan_out(
    ctx: JobContext, p: EvaluateParams, groups: list[list[str]], names: dict[str, Any]
) -> Outcome | Waiting:
    """Create one `evaluate` child per group, wait for them, then gather their results."""
    with session_scope(ctx.sessions) as session:
        kids = children_of(session, ctx.job_id)
        done = sum(k.status in FINAL for k in kids)
        got = gather(kids) if kids and done == len(kids) else None
    if not kids:
        return waiting(0, len(groups), group_children(p.model_id, groups, p.split))
    if got is None:
        return waiting(done, len(kids), [])
    if not got.metrics and got.failed:
        why = sorted(set(got.failed.values()))
        raise JobError(f"every evaluation group failed: {why}"[:3000])
    zero_shot = _finetuned(ctx, p.model_id) is None
    result = {"model_id": p.model_id, **names, "zero_shot": zero_shot, "split": p.split,
              "metrics": got.metrics, "skipped": got.skipped, "failed": got.failed}  # fmt: skip
    return Outcome(result)  # the children wrote the evaluation rows


def run_evaluate(ctx: JobContext) -> Outcome | Waiting:
    """Evaluate; rows replace earlier ones of the same (model, dataset, split), or with
    `keep_existing` are written only where none is stored. On datasets
    of more than `evaluate_group_images` images in all, fans out as child `evaluate` jobs."""
    p = EvaluateParams.model_validate({"type": "evaluate", **ctx.params})
    ft = _finetuned(ctx, p.model_id)
    base_id = ft["base_model_id"] if ft else p.model_id
    model_row = base_model_row(ctx, base_id)
    datasets = dataset_rows(ctx, p.dataset_ids)
    if ctx.parent_id is None:
        groups = size_groups(datasets, p.split, ctx.settings.evaluate_group_images)
        if len(groups) > 1:
            return _fan_out(ctx, p, groups, _names(model_row, datasets))
    ctx.progress(0.0, "loading model")
    loaded = load_base(ctx, model_row)
    if ft is None:
        target = Target(base_id, None, loaded.model)
    else:
        target = Target(base_id, p.model_id, load_tuned(ctx, loaded, ft["checkpoint_uri"]))
    from workers.ml.finetune.runtime import cpu_threads

    with cpu_threads(loaded.device, ctx.settings.finetune_threads):
        metrics, skipped = evaluate_all(ctx, loaded, target, datasets, p.split)
    rows = evaluation_rows(ctx, target, metrics, p.split)

    def write(session: Session) -> None:
        (add_missing_evaluations if p.keep_existing else replace_evaluations)(session, rows)

    result = {"model_id": p.model_id, **_names(model_row, datasets), "zero_shot": ft is None,
              "split": p.split, "metrics": metrics, "skipped": skipped}  # fmt: skip
    return Outcome(result, write)
