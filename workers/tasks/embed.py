"""The `embed` job: one forward pass over a dataset split, stored once per content key."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import new_id
from app.imagedata.prompts import prompts_hash
from app.jobs.types import EmbedParams, EmbedShardParams
from app.models import Embedding
from workers.tasks.base import JobContext, JobError, Outcome, discard_on_cancel
from workers.tasks.datasets import load_rows, open_layout, ref_names


def stored_embedding(ctx: JobContext, p: EmbedParams) -> dict[str, Any] | None:
    """The result of the embedding of (model, dataset, split, prompts) if one is stored."""
    from app.db import session_scope

    with session_scope(ctx.sessions) as session:
        row = session.scalar(
            select(Embedding).where(
                Embedding.model_id == p.model_id, Embedding.dataset_id == p.dataset_id,
                Embedding.split == p.split, Embedding.prompts_hash == prompts_hash(p.prompts),
            )
        )  # fmt: skip
        return None if row is None else _result(row.id, row.n, row.zero_shot)


def _result(embedding_id: str, n: int, zero_shot: dict[str, Any]) -> dict[str, Any]:
    return {"embedding_id": embedding_id, "n": n, "zero_shot": zero_shot}


def load_model_for(ctx: JobContext, model_row: dict[str, Any]) -> Any:
    """The job's base model, loaded on the worker's device (JobError for a bad spec)."""
    from app.imagedata import ModelSpecError
    from workers.ml.models import load_model
    from workers.tasks.datasets import model_spec

    spec = model_spec(ctx, model_row)
    try:
        return load_model(spec, device=ctx.settings.device)
    except ModelSpecError as exc:
        raise JobError(str(exc)) from None


def work_dir(ctx: JobContext, key: str) -> Path:
    """Where a run stored under artifact `key` is written: in place in a local store, else
    in the worker's data directory (then copied with `Storage.put_dir`)."""
    if ctx.storage.is_local:
        return Path(ctx.storage.path(key))
    return ctx.settings.data_dir / "work" / key


def read_meta(out: Path) -> tuple[int, int, int, dict[str, Any], dict[str, Any]]:
    import numpy as np

    meta = json.loads((out / "meta.json").read_text())
    images = np.load(out / "images.npy", mmap_mode="r", allow_pickle=False)
    texts = np.load(out / "texts.npy", mmap_mode="r", allow_pickle=False)
    zero_shot = {
        k: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None)
        for k, v in (meta.get("zero_shot") or {}).items()
    }
    notes = {"warnings": meta.get("warnings", []), "prompts": _prompt_summary(meta)}
    return int(images.shape[0]), int(texts.shape[0]), int(images.shape[1]), zero_shot, notes


def _prompt_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """Truncated and colliding classes of a run's meta.json, for the job's result."""
    report = meta.get("prompt_report") or {}
    truncated = sorted({t["class"] for t in report.get("truncated", [])})
    return {"context_length": report.get("context_length"), "truncated_classes": truncated,
            "colliding_classes": report.get("colliding", [])}  # fmt: skip


def run_embed(ctx: JobContext) -> Outcome:
    """Embed (model, dataset, split, prompts) unless already stored; resumable and idempotent.

    One run on this worker whatever the split's size (`workers.tasks.shards.run_embed_job`,
    the `embed` job's handler and the `assess` job's embedding step, fans large splits out).
    """
    p = EmbedParams.model_validate({"type": "embed", **ctx.params})
    model_row, dataset_row = load_rows(ctx, p.model_id, p.dataset_id)
    names = ref_names(model_row, dataset_row)
    if (done := stored_embedding(ctx, p)) is not None:
        return Outcome({**done, **names, "reused": True})
    ctx.progress(0.0, "loading model")
    model = load_model_for(ctx, model_row)
    layout = open_layout(ctx, dataset_row)
    key = embedding_key(model.fingerprint, layout.fingerprint, p)
    out = work_dir(ctx, key)
    with discard_on_cancel(ctx, lambda: shutil.rmtree(out, ignore_errors=True)):
        timing = embed_rows(ctx, model, layout, p, out)
    if not ctx.storage.is_local:
        ctx.storage.put_dir(out, key)
    extra: dict[str, Any] = {**names}
    if timing is not None:
        extra["timing"] = {**timing, "device": str(model.device)}
    return stored_outcome(ctx, p, key, out, extra)


def embedding_key(model_fingerprint: str, dataset_fingerprint: str, p: EmbedParams) -> str:
    """The artifact key of an embedding: a hash of what its bytes depend on."""
    digest = hashlib.sha256(
        f"{model_fingerprint}|{dataset_fingerprint}|{p.split}|{prompts_hash(p.prompts)}".encode()
    ).hexdigest()[:40]
    return f"embeddings/{digest}"


def stored_outcome(
    ctx: JobContext, p: EmbedParams, key: str, out: Path, extra: dict[str, Any]
) -> Outcome:
    """The job's result read from the completed run in `out` (stored under `key`), and the
    `Embedding` row it writes when it succeeds; `extra` joins the result."""
    n, k, dim, zero_shot, notes = read_meta(out)
    emb_id = new_id("emb")

    def write(session: Session) -> None:
        session.add(Embedding(
            id=emb_id, project_id=ctx.project_id, model_id=p.model_id, dataset_id=p.dataset_id,
            split=p.split, prompts_hash=prompts_hash(p.prompts), uri=key, n=n, k=k, dim=dim,
            zero_shot=zero_shot, job_id=ctx.job_id,
        ))  # fmt: skip

    return Outcome({**_result(emb_id, n, zero_shot), "reused": False, **notes, **extra}, write)


def loader_workers(setting: int | None) -> int | None:
    """DataLoader workers of an embed job: the setting when given; else None (the embedding
    library picks by device: decoding in parallel is what keeps a GPU fed) in a process that
    may start processes, and 0 in a daemonic one (Celery's prefork pool children cannot)."""
    if setting is not None:
        return setting
    return 0 if multiprocessing.current_process().daemon else None


def embed_rows(
    ctx: JobContext,
    model: Any,
    layout: Any,
    p: EmbedParams | EmbedShardParams,
    out: Path,
    *,
    shard: tuple[int, int] | None = None,
    batch_size: int | None = None,
) -> dict[str, Any] | None:
    """Run the embedding of rows `shard` (default: all) of the split into `out`, in batches
    of `batch_size` (default: the setting); where its time went (None when the files were
    already complete). JobError for undecodable images."""
    from app.imagedata import ImageDataError
    from workers.ml.embed import embed_dataset

    out.mkdir(parents=True, exist_ok=True)
    try:
        result = embed_dataset(
            model, layout, split=p.split, out_dir=out, prompts=p.prompts,
            batch_size=batch_size or ctx.settings.embed_batch_size,
            num_workers=loader_workers(ctx.settings.embed_num_workers), shard=shard,
            resume=True, checkpoint_every_s=5.0,
            progress=lambda f, stage=None, **units: ctx.progress(f, stage or "embedding", **units),
        )  # fmt: skip
    except ImageDataError as exc:
        raise JobError(f"cannot embed dataset {p.dataset_id}: {exc}") from None
    return result.timing
