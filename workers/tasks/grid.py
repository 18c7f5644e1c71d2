"""A `finetune` job's grid fanned out: one `finetune_point` child job per grid point.

The parent's first run creates the children and waits (holding no worker); any worker runs
them; once all are final the parent runs again, picks the point with the best validation
accuracy (ties: the lowest index, as the serial `workers.ml.finetune.grid.run_grid` does),
copies its `final.pt` to the top of its own checkpoint key and goes on with the evaluation
(fanned out as `evaluate` children too where it spans several groups:
`workers.tasks.finetune_eval`).
Each point trains from the pristine base model with its own seed and its checkpoints under
`finetune/{parent}/grid/{index:03d}`, as in the serial grid, so the result is the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.db import session_scope
from app.finetuning.jobs import FINETUNE_POINT
from app.finetuning.params import FinetuneParams, FinetunePointParams
from app.jobs.children import FINAL, children_of
from app.models import Job, JobStatus
from workers.tasks.base import JobContext, JobError, Outcome, Waiting, discard_on_cancel
from workers.tasks.datasets import base_model_row, dataset_rows, load_base
from workers.tasks.finetune_eval import evaluation_groups, fan_out
from workers.tasks.training import (
    TRAIN_SHARE,
    checkpoint_key,
    checkpoint_store,
    conclude,
    load_tuned,
    torch_threads,
    train,
)


@dataclass(frozen=True)
class Child:
    """What the parent needs of one child job's row."""

    job_id: str
    index: int
    status: str
    result: dict[str, Any] | None
    error: str | None
    checkpoint_key: str


def run_point(ctx: JobContext) -> Outcome:
    """Train one grid point (resuming from its checkpoints); the result is its summary."""
    from workers.ml.finetune import FinetuneConfig

    p = FinetunePointParams.model_validate({"type": "finetune_point", **ctx.params})
    config = FinetuneConfig.from_dict(p.config).validate()
    model_row = base_model_row(ctx, p.model_id)
    (train_row,) = dataset_rows(ctx, [p.dataset_id])
    ctx.progress(0.0, "loading model")
    loaded = load_base(ctx, model_row)
    from workers.ml.finetune.runtime import cpu_threads

    # the serial fine-tune's thread count (IIMM_FINETUNE_THREADS), recorded as observed
    with (
        discard_on_cancel(ctx, lambda: _discard_point(ctx, p.checkpoint_key)),
        cpu_threads(loaded.device, ctx.settings.finetune_threads),
    ):
        threads = torch_threads()
        result = train(ctx, loaded, train_row, config, p.checkpoint_key, share=1.0)
    return Outcome({"index": p.index, **result.to_dict(), "cpu_threads": threads})


def _discard_point(ctx: JobContext, key: str) -> None:
    """A cancelled point's checkpoints go; when its parent is cancelled too (final), the
    folders `finetune/{parent}/grid` and `finetune/{parent}` go with the last point's, as
    soon as they are empty (a finished sibling's files stay for the orphan sweep)."""
    ctx.storage.delete(key)
    if ctx.parent_id is None or not ctx.storage.is_local:  # object stores have no folders
        return
    with session_scope(ctx.sessions) as session:
        parent = session.scalar(select(Job.status).where(Job.id == ctx.parent_id))
    if parent not in FINAL:
        return
    grid = ctx.storage.path(key.rsplit("/", 1)[0])
    for folder in (grid, os.path.dirname(grid)):
        try:
            os.rmdir(folder)  # only if empty: a sibling still running keeps its files
        except OSError:
            return


def _children(ctx: JobContext) -> list[Child]:
    with session_scope(ctx.sessions) as session:
        return [
            Child(j.id, int(j.params["index"]), j.status, j.result, j.error,
                  j.params["checkpoint_key"])
            for j in children_of(session, ctx.job_id)
            if j.type == FINETUNE_POINT.name
        ]  # fmt: skip


def _point_params(ctx: JobContext, p: FinetuneParams, index: int, point: Any) -> dict[str, Any]:
    key = f"{checkpoint_key(ctx.job_id)}/grid/{index:03d}"  # the serial grid's layout
    return {
        "model_id": p.model_id, "dataset_id": p.dataset_id, "index": index,
        "config": point.to_dict(), "checkpoint_key": key,
    }  # fmt: skip


def run_grid_parent(ctx: JobContext, p: FinetuneParams, points: list[Any]) -> Outcome | Waiting:
    """Create the grid's children (first run), wait for them, or conclude (all final)."""
    kids = _children(ctx)
    if not kids:
        children = [(FINETUNE_POINT, _point_params(ctx, p, i, pt)) for i, pt in enumerate(points)]
        detail = {"done": 0, "total": len(points), "unit": "grid points"}
        return Waiting("waiting for grid points", children, 0.0, detail)
    running = [k for k in kids if k.status not in FINAL]
    if running:
        done = len(kids) - len(running)
        detail = {"done": done, "total": len(kids), "unit": "grid points"}
        return Waiting("waiting for grid points", [], TRAIN_SHARE * done / len(kids), detail)
    # a cancelled job is final: its checkpoints (the children's too) could never be used
    with discard_on_cancel(ctx, lambda: ctx.storage.delete(checkpoint_key(ctx.job_id))):
        return _conclude_grid(ctx, p, kids)


def best_child(done: list[Child]) -> Child:
    """The child with the best validation accuracy; the lowest index among ties."""
    best = done[0]
    for kid in done[1:]:
        assert kid.result is not None and best.result is not None
        if (kid.result["best_val_acc"] or 0.0) > (best.result["best_val_acc"] or 0.0):
            best = kid
    return best


def _conclude_grid(ctx: JobContext, p: FinetuneParams, kids: list[Child]) -> Outcome | Waiting:
    from workers.ml.finetune.checkpoint import FINAL as FINAL_PT
    from workers.ml.finetune.storage import as_store, read_bytes, write_bytes

    kids = sorted(kids, key=lambda k: k.index)
    done = [k for k in kids if k.status == JobStatus.succeeded.value and k.result]
    failed = [
        {"index": k.index, "job_id": k.job_id, "status": k.status, "error": k.error}
        for k in kids
        if k not in done
    ]
    if not done:
        why = "; ".join(f"point {f['index']} {f['status']}: {f['error']}" for f in failed)
        raise JobError(f"every grid point failed ({why})"[:3000])
    best = best_child(done)
    final = read_bytes(as_store(checkpoint_store(ctx, best.checkpoint_key)), FINAL_PT)
    if final is None:
        raise RuntimeError(f"grid point {best.index} succeeded but its {FINAL_PT} is missing")
    write_bytes(as_store(checkpoint_store(ctx, checkpoint_key(ctx.job_id))), FINAL_PT, final)
    assert best.result is not None
    summary = {
        **{k: v for k, v in best.result.items() if k != "index"},
        "grid": [
            {"index": k.index, "job_id": k.job_id, "config": k.result["config"],
             "best_val_acc": k.result["best_val_acc"], "best_epoch": k.result["best_epoch"]}
            for k in done if k.result is not None
        ],
        "grid_failed": failed,
    }  # fmt: skip
    groups = evaluation_groups(ctx, p)
    if len(groups) > 1:
        return fan_out(ctx, p, summary, groups)
    ctx.progress(TRAIN_SHARE, "loading the chosen grid point")
    loaded = load_base(ctx, base_model_row(ctx, p.model_id))
    model = load_tuned(ctx, loaded, checkpoint_key(ctx.job_id))
    from workers.ml.finetune.runtime import cpu_threads

    with cpu_threads(loaded.device, ctx.settings.finetune_threads):  # as the serial job
        return conclude(ctx, p, loaded, model, summary)
