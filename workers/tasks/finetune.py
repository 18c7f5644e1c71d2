"""The `finetune` job: one fine-tune in this process (`workers.tasks.training`), or a grid
of several hyperparameter points fanned out as `finetune_point` child jobs
(`workers.tasks.grid`)."""

from __future__ import annotations

from typing import Any

from app.finetuning.params import FinetuneParams
from workers.tasks.base import JobContext, JobError, Outcome, Waiting, discard_on_cancel
from workers.tasks.datasets import base_model_row, dataset_rows, load_base
from workers.tasks.finetune_eval import conclude_fanned, evaluation_groups, fan_out
from workers.tasks.grid import run_grid_parent
from workers.tasks.training import checkpoint_key, conclude, torch_threads, train


def _config(p: FinetuneParams) -> Any:
    from workers.ml.finetune import FinetuneConfig

    hp = p.hyperparameters.model_dump()
    return FinetuneConfig.from_dict({**hp, "method": p.method}).validate()


def grid_points(p: FinetuneParams) -> list[Any]:
    """The configs of the job's grid (one without a grid), as the library expands them."""
    from workers.ml.finetune import FinetuneError
    from workers.ml.finetune.grid import grid_points as expand

    try:
        return expand(_config(p))
    except FinetuneError as exc:
        raise JobError(f"{type(exc).__name__}: {exc}") from None


def run_finetune(ctx: JobContext) -> Outcome | Waiting:
    """Fine-tune, then evaluate the fine-tuned and (where missing) the zero-shot model.
    A grid of several points fans out as `finetune_point` child jobs (`workers.tasks.grid`);
    an evaluation of more than one `evaluate` group, as `evaluate` child jobs
    (`workers.tasks.finetune_eval`)."""
    p = FinetuneParams.model_validate({"type": "finetune", **ctx.params})
    fanned = conclude_fanned(ctx, p)
    if fanned is not None:  # trained; its evaluation children exist
        return fanned
    points = grid_points(p)
    if len(points) > 1:
        return run_grid_parent(ctx, p, points)
    model_row = base_model_row(ctx, p.model_id)
    (train_row,) = dataset_rows(ctx, [p.dataset_id])
    ctx.progress(0.0, "loading model")
    loaded = load_base(ctx, model_row)
    from workers.ml.finetune.runtime import cpu_threads

    # a cancelled job is final: its checkpoints could never be resumed or used
    with (
        discard_on_cancel(ctx, lambda: ctx.storage.delete(checkpoint_key(ctx.job_id))),
        cpu_threads(loaded.device, ctx.settings.finetune_threads),
    ):
        threads = torch_threads()
        result = train(ctx, loaded, train_row, _config(p), checkpoint_key(ctx.job_id))
        summary = {**result.to_dict(), "cpu_threads": threads}
        groups = evaluation_groups(ctx, p)
        if len(groups) > 1:
            return fan_out(ctx, p, summary, groups)
        return conclude(ctx, p, loaded, result.model, summary)
