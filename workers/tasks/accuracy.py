"""A model's accuracy on datasets' splits (top-1, top-5, per-class recall; zero-shot ones
reuse stored embeddings) and its `Evaluation` rows: shared by the `finetune`,
`finetune_point` and `evaluate` jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import new_id, session_scope
from app.imagedata import ImageDataError
from app.imagedata.prompts import default_templates, prompts_hash
from app.models import Embedding, Evaluation
from workers.tasks.base import JobContext, JobError
from workers.tasks.datasets import open_layout
from workers.tasks.score import zero_shot_top1


def templates_of(layout: Any) -> list[str]:
    """The dataset's default prompt templates, in the fine-tuning library's ``{}`` form."""
    return [t.replace("{c}", "{}") for t in default_templates(layout.name)]


@dataclass(frozen=True)
class Target:
    """What is evaluated: the base model's id and, for a fine-tuned one, its id and module."""

    base_model_id: str
    finetuned_model_id: str | None
    model: Any

    @property
    def ref(self) -> str:
        return self.finetuned_model_id or self.base_model_id


def _cached_zero_shot(ctx: JobContext, model_id: str, dataset_id: str, split: str) -> dict | None:
    with session_scope(ctx.sessions) as session:
        row = session.scalar(
            select(Embedding).where(
                Embedding.project_id == ctx.project_id, Embedding.model_id == model_id,
                Embedding.dataset_id == dataset_id, Embedding.split == split,
                Embedding.prompts_hash == prompts_hash(None),
            )
        )  # fmt: skip
        if row is None or zero_shot_top1(row.zero_shot) is None:
            return None
        zs, uri, k = row.zero_shot, row.uri, row.k
        reused = {"top1": zero_shot_top1(zs), "top5": zs.get("top5"), "n": row.n,
                  "mean_per_class_recall": zs.get("mean_per_class_recall"),
                  "reused_embedding_id": row.id}  # fmt: skip
    return reused | {"per_class_recall": _stored_recall(ctx, uri, k)}


def _stored_recall(ctx: JobContext, uri: str, num_classes: int) -> list[float | None]:
    """Per-class top-1 recall from a stored embedding run's top-k predictions and labels."""
    import numpy as np

    from workers.ml.store import LABELS, TOPK
    from workers.ml.zeroshot import per_class_recall

    folder = ctx.storage.local_dir(uri)
    topk = np.load(folder / TOPK, allow_pickle=False)
    labels = np.load(folder / LABELS, allow_pickle=False)
    return per_class_recall(topk, labels, num_classes)


def evaluate_one(
    ctx: JobContext, loaded: Any, target: Target, dataset: dict[str, Any], split: str
) -> dict[str, Any]:
    """Metrics of `target` on one dataset split (zero-shot: stored embeddings when present)."""
    from workers.ml.data.labelled import LabelledImages
    from workers.ml.finetune import evaluate

    if target.finetuned_model_id is None:
        cached = _cached_zero_shot(ctx, target.base_model_id, dataset["id"], split)
        if cached is not None:
            return cached
    layout = open_layout(ctx, dataset)
    try:
        layout.split(split, nonempty=True)
        data = LabelledImages(layout, split, loaded.preprocess)
        result = evaluate(
            target.model, loaded.tokenizer, data, layout.class_names, templates_of(layout),
            device=loaded.device, batch_size=max(1, ctx.settings.embed_batch_size),
        )  # fmt: skip
    except ImageDataError as exc:
        raise JobError(f"cannot evaluate on dataset {dataset['id']}: {exc}") from None
    return result.to_dict()


def evaluate_all(
    ctx: JobContext, loaded: Any, target: Target, datasets: list[dict[str, Any]], split: str,
    start: float = 0.0,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:  # fmt: skip
    """Metrics per dataset id, and the datasets skipped (no such split) with the reason."""
    done: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for i, dataset in enumerate(datasets):
        ctx.progress(
            start + (1 - start) * i / max(len(datasets), 1), f"evaluating {dataset['name']}"[:100],
            done=i, total=len(datasets), unit="datasets",
        )  # fmt: skip
        try:
            open_layout(ctx, dataset).split(split, nonempty=True)
        except ImageDataError as exc:
            skipped[dataset["id"]] = str(exc)
            continue
        done[dataset["id"]] = evaluate_one(ctx, loaded, target, dataset, split)
    return done, skipped


def evaluation_rows(
    ctx: JobContext, target: Target, metrics: dict[str, dict[str, Any]], split: str
) -> list[Evaluation]:
    """ORM rows of `metrics` (not yet added to a session)."""
    return [
        Evaluation(
            id=new_id("evl"), project_id=ctx.project_id, base_model_id=target.base_model_id,
            finetuned_model_id=target.finetuned_model_id, model_ref=target.ref,
            dataset_id=dataset_id, split=split, top1=float(m["top1"]),
            top5=_num(m.get("top5")), mean_per_class_recall=_num(m.get("mean_per_class_recall")),
            n=int(m["n"]), per_class_recall=list(m.get("per_class_recall") or []),
            job_id=ctx.job_id,
        )
        for dataset_id, m in metrics.items()
    ]  # fmt: skip


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def replace_evaluations(session: Session, rows: list[Evaluation]) -> None:
    """Write `rows`, replacing what was stored for the same (model, dataset, split)."""
    from sqlalchemy import delete

    for row in rows:
        session.execute(
            delete(Evaluation).where(
                Evaluation.model_ref == row.model_ref, Evaluation.dataset_id == row.dataset_id,
                Evaluation.split == row.split,
            )
        )  # fmt: skip
        session.add(row)
    session.flush()


def add_missing_evaluations(session: Session, rows: list[Evaluation]) -> None:
    """Write the rows not stored yet (a concurrent writer's row wins; no error)."""
    from sqlalchemy.exc import IntegrityError

    for row in rows:
        exists = session.scalar(
            select(Evaluation.id).where(
                Evaluation.model_ref == row.model_ref, Evaluation.dataset_id == row.dataset_id,
                Evaluation.split == row.split,
            )
        )  # fmt: skip
        if exists is not None:
            continue
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            pass
