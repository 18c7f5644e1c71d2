"""Fine-tuning on a worker, shared by the `finetune` job and its grid's `finetune_point`
children: train a base model on a dataset's train split (resumable from its checkpoints in
the artifact store), then record the fine-tuned model and evaluate it everywhere; load a
stored fine-tuned model (the `evaluate` job)."""

from __future__ import annotations

import copy
import math
import os
from typing import Any

from sqlalchemy.orm import Session

from app.db import new_id
from app.finetuning.params import FinetuneParams
from app.imagedata import ImageDataError
from app.models import FinetunedModel
from workers.tasks.accuracy import (
    Target,
    add_missing_evaluations,
    evaluate_all,
    evaluation_rows,
    replace_evaluations,
    templates_of,
)
from workers.tasks.base import JobContext, JobError, Outcome
from workers.tasks.datasets import base_model_row, dataset_rows, open_layout, ref_names

TRAIN_SHARE = 0.8  # of the job's progress; evaluation takes the rest
#: Preprocessed training (and validation) images kept in memory per split between epochs:
#: each is decoded once, not once per epoch (the demo's fine-tunes spent a quarter of their
#: CPU time decoding again); past it images are decoded on every read.
DECODED_CACHE_BYTES = 256 * 2**20


def checkpoint_key(job_id: str) -> str:
    """Artifact key of a job's checkpoints: the same on every attempt, so a rerun resumes."""
    return f"finetune/{job_id}"


def checkpoint_store(ctx: JobContext, key: str) -> Any:
    """Where a run's checkpoints live: a local directory, or the artifact store via fsspec."""
    if ctx.storage.is_local:
        path = ctx.storage.path(key)
        os.makedirs(path, exist_ok=True)
        return path
    from fsspec.implementations.dirfs import DirFileSystem

    return DirFileSystem(path=ctx.storage.path(key), fs=ctx.storage.fs)


def keep_only_final(ctx: JobContext, key: str) -> None:
    """A finished fine-tune keeps only its chosen grid point's trained parameters
    (``final.pt``): the resumable slots, the best-epoch copy and every grid point's files go
    (they serve a retry only, and the job has succeeded)."""
    from workers.ml.finetune.checkpoint import FINAL

    fs, root = ctx.storage.fs, ctx.storage.path(key)
    for path in fs.ls(root, detail=False):
        if str(path).rstrip("/").rsplit("/", 1)[-1] != FINAL:
            fs.rm(path, recursive=True)


def _final_bytes(ctx: JobContext, key: str) -> int:
    """Size in bytes of the trained parameters a fine-tune keeps (``final.pt`` under `key`)."""
    from workers.ml.finetune.checkpoint import FINAL

    return int(ctx.storage.fs.size(ctx.storage.path(f"{key}/{FINAL}")))


def _progress(ctx: JobContext, n_train: int, config: Any, share: float = TRAIN_SHARE) -> Any:
    """The trainer's ``progress(epoch, step, loss, val_acc)`` as the job's progress: steps
    done of all, the epoch, the last step's loss and the last epoch's validation accuracy;
    training is `share` of the job."""
    per_epoch = max(1, math.ceil(n_train / config.batch_size))
    total, epochs = config.total_steps(per_epoch), config.total_epochs(per_epoch)
    last_val: list[float | None] = [None]

    def report(epoch: int, step: int, loss: float, val_acc: float | None) -> None:
        if val_acc is not None:
            last_val[0] = val_acc
        ctx.progress(
            share * min(1.0, step / total), "training", done=step, total=total,
            unit="steps", epoch=epoch, epochs=epochs, loss=float(loss), val_acc=last_val[0],
        )  # fmt: skip

    return report


def _train_val(layout: Any, preprocess: Any, dataset_id: str) -> tuple[Any, Any]:
    """The dataset's `train_no_val` and `val` splits (the paper's 10 %, at most 5000,
    derived at registration), or the library's `validation_split` of `train` without them;
    each keeps up to `DECODED_CACHE_BYTES` of preprocessed images between epochs."""
    from workers.ml.data.labelled import LabelledImages
    from workers.ml.finetune import validation_split

    def split(name: str) -> LabelledImages:
        return LabelledImages(layout, name, preprocess, cache_bytes=DECODED_CACHE_BYTES)

    try:
        if "val" in layout.splits and "train_no_val" in layout.splits:
            train, val = split("train_no_val"), split("val")
            if len(train) > 0 and len(val) > 0:
                return train, val
        full = split("train")
    except ImageDataError as exc:
        raise JobError(f"dataset {dataset_id} cannot be fine-tuned on: {exc}") from None
    if len(full) < 2:
        raise JobError(f"dataset {dataset_id} has fewer than 2 training samples")
    return validation_split(full)


def train(
    ctx: JobContext, loaded: Any, train_row: dict[str, Any], config: Any, key: str,
    share: float = TRAIN_SHARE,
) -> Any:  # fmt: skip
    """Run the library's `finetune` on the train split and the paper's validation split,
    from a copy of the base model, with checkpoints under artifact key `key`."""
    from workers.ml.finetune import FinetuneError, finetune

    layout = open_layout(ctx, train_row)
    train, val = _train_val(layout, loaded.preprocess, train_row["id"])
    ctx.progress(0.0, "training")
    store = checkpoint_store(ctx, key)
    try:
        return finetune(
            copy.deepcopy(loaded.model), loaded.tokenizer, train, val, layout.class_names,
            templates_of(layout), config, checkpoint_dir=store,
            device=loaded.device, progress=_progress(ctx, len(train), config, share),
        )  # fmt: skip
    except FinetuneError as exc:
        raise JobError(f"{type(exc).__name__}: {exc}") from None
    except ImageDataError as exc:
        raise JobError(f"cannot read dataset {train_row['id']}: {exc}") from None


def _record(
    ctx: JobContext, p: FinetuneParams, summary: dict[str, Any], ft_id: str
) -> FinetunedModel:
    return FinetunedModel(
        id=ft_id, project_id=ctx.project_id, base_model_id=p.model_id,
        train_dataset_id=p.dataset_id, method=p.method, hyperparameters=summary["config"],
        status="ready", best_epoch=summary["best_epoch"], val_accuracy=summary["best_val_acc"],
        checkpoint_uri=checkpoint_key(ctx.job_id), job_id=ctx.job_id,
        metrics={k: summary[k] for k in ("history", "trainable_params", "grid")},
    )  # fmt: skip


def torch_threads() -> int:
    """PyTorch's intra-op CPU thread count in this process now (a job records the count it
    trained with: IIMM_FINETUNE_THREADS on CPU)."""
    import torch

    return int(torch.get_num_threads())


def conclude(
    ctx: JobContext, p: FinetuneParams, loaded: Any, model: Any, summary: dict[str, Any]
) -> Outcome:
    """Evaluate the trained `model` and the zero-shot one on the targets; record both, and
    the fine-tuned model (`summary`: `FinetuneResult.to_dict()`), when the job succeeds."""
    (train_row,) = dataset_rows(ctx, [p.dataset_id])
    names = ref_names(base_model_row(ctx, p.model_id), train_row)
    targets = dataset_rows(ctx, p.evaluate_on)
    ft_id = new_id("ftm")
    tuned = Target(p.model_id, ft_id, model)
    ft_metrics, skipped = evaluate_all(ctx, loaded, tuned, targets, "test", TRAIN_SHARE)
    zs_metrics, _ = evaluate_all(
        ctx, loaded, Target(p.model_id, None, loaded.model), targets, "test", 0.95
    )
    record = _record(ctx, p, summary, ft_id)
    key = checkpoint_key(ctx.job_id)
    kept = _final_bytes(ctx, key)
    record.metrics = {**record.metrics, "checkpoint_bytes": kept}
    ft_rows = evaluation_rows(ctx, tuned, ft_metrics, "test")
    zs_rows = evaluation_rows(ctx, Target(p.model_id, None, None), zs_metrics, "test")

    def write(session: Session) -> None:
        session.add(record)
        session.flush()
        replace_evaluations(session, ft_rows)
        add_missing_evaluations(session, zs_rows)

    out = {"finetuned_model_id": ft_id, **summary, **names,
           "test_top1": {k: v["top1"] for k, v in ft_metrics.items()},
           "zero_shot_top1": {k: v["top1"] for k, v in zs_metrics.items()},
           "skipped": skipped, "checkpoint_bytes": kept}  # fmt: skip
    return Outcome(out, write, after_commit=lambda: keep_only_final(ctx, key))


def load_tuned(ctx: JobContext, loaded: Any, checkpoint_uri: str) -> Any:
    """A stored fine-tuned model, rebuilt on a copy of its base model."""
    from workers.ml.finetune import load_finetuned

    try:
        return load_finetuned(copy.deepcopy(loaded.model), checkpoint_store(ctx, checkpoint_uri))
    except FileNotFoundError as exc:
        raise JobError(f"the fine-tuned model's checkpoint is missing: {exc}") from None
