"""A large `embed` job fanned out: one `embed_shard` child job per range of the split's rows.

On a split of more than `embed_shard_threshold` images the job's first run cuts the rows
into ranges of about `embed_shard_size` images at multiples of the batch size
(`workers.ml.shards.plan_shards`), creates one child per range and waits, holding no worker
(`app.jobs.children`). Any worker runs a child: it embeds its range with the parent's batch
size into the artifact key `shards/{parent}/{index:03d}`. Once every child is final the
parent runs again, merges the ranges (`workers.ml.shards.merge_shards`) into the same arrays
and statistics, byte for byte, as one worker's run of the whole split, stores that as the
embedding and removes the shards. A shard that fails for good (a crash is retried as in any
job) fails the parent, naming it; cancelling the parent cancels the children. Anything else
(a small split, an embedding already stored) is one run: `workers.tasks.embed.run_embed`.

The `assess` job embeds its split through `run_embed_job` too (with its own job id and the
embed params), so a large split of an assess job is sharded the same way, the assess job the
shards' parent (`workers.tasks.assess`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from typing import Any

from app.db import session_scope
from app.imagedata import ImageDataError
from app.jobs.children import FINAL, children_of
from app.jobs.types import EMBED_SHARD, EmbedParams, EmbedShardParams
from app.models import JobStatus
from workers.tasks.base import JobContext, JobError, Outcome, Waiting, discard_on_cancel
from workers.tasks.datasets import load_rows, open_layout, ref_names
from workers.tasks.embed import (
    embed_rows,
    embedding_key,
    load_model_for,
    run_embed,
    stored_embedding,
    stored_outcome,
    work_dir,
)

#: Share of the parent's progress done when every shard is (the merge is the rest).
SHARDS_SHARE = 0.9


@dataclass(frozen=True)
class Shard:
    """What the parent needs of one child job's row."""

    job_id: str
    index: int
    start: int
    stop: int
    key: str
    status: str
    worker: str | None
    result: dict[str, Any] | None
    error: str | None


def shards_key(job_id: str) -> str:
    """The artifact key under which the shards of embed job `job_id` are stored."""
    return f"shards/{job_id}"


def run_embed_job(ctx: JobContext) -> Outcome | Waiting:
    """The `embed` handler (and the `assess` job's embedding step, `ctx.params` then the embed
    params): a split of more than `embed_shard_threshold` images is embedded by `embed_shard`
    child jobs of `ctx.job_id` and merged; any other split in one run (`run_embed`)."""
    p = EmbedParams.model_validate({"type": "embed", **ctx.params})
    if kids := _children(ctx):  # whatever this worker's settings: the shards are made
        return _gather(ctx, p, kids)
    if ctx.parent_id is not None or not ctx.settings.embed_shard_threshold:
        return run_embed(ctx)
    plan = _plan(ctx, p)
    if plan is None:
        return run_embed(ctx)
    batch_size = ctx.settings.embed_batch_size
    children = [
        (EMBED_SHARD, {
            "model_id": p.model_id, "dataset_id": p.dataset_id, "split": p.split,
            "prompts": p.prompts, "index": i, "start": a, "stop": b, "batch_size": batch_size,
            "key": f"{shards_key(ctx.job_id)}/{i:03d}",
        })
        for i, (a, b) in enumerate(plan)
    ]  # fmt: skip
    detail = {"done": 0, "total": len(plan), "unit": "shards"}
    return Waiting("waiting for shards", children, 0.0, detail)


def _plan(ctx: JobContext, p: EmbedParams) -> list[tuple[int, int]] | None:
    """The shards' row ranges, or None when the split is small enough for one run (or the
    embedding is stored, or the split cannot be read: `run_embed` reports that). JobError,
    before any shard exists, for prompts the dataset has no templates for (checked at
    submission; a job queued before that check, or a dataset read differently, gets here)."""
    from app.imagedata.prompts import render_prompts, resolve_templates
    from workers.ml.shards import plan_shards

    threshold = ctx.settings.embed_shard_threshold
    _, dataset_row = load_rows(ctx, p.model_id, p.dataset_id)
    known = (dataset_row.get("splits") or {}).get(p.split)
    if (known is not None and known <= threshold) or stored_embedding(ctx, p) is not None:
        return None
    layout = open_layout(ctx, dataset_row)
    try:
        render_prompts(resolve_templates(p.prompts, layout.name), ["x"])
    except ImageDataError as exc:
        raise JobError(f"cannot embed dataset {p.dataset_id}: {exc}") from None
    try:
        n = len(layout.split(p.split))
    except ImageDataError:
        return None
    if n <= threshold:
        return None
    plan = plan_shards(
        n, math.ceil(n / ctx.settings.embed_shard_size), ctx.settings.embed_batch_size
    )
    return plan if len(plan) > 1 else None


def run_shard(ctx: JobContext) -> Outcome:
    """The `embed_shard` handler: embed rows start..stop of the split into the shard's key
    (resuming from its last checkpoint); the result names the range and where time went."""
    p = EmbedShardParams.model_validate({"type": "embed_shard", **ctx.params})
    model_row, dataset_row = load_rows(ctx, p.model_id, p.dataset_id)
    ctx.progress(0.0, "loading model")
    model = load_model_for(ctx, model_row)
    layout = open_layout(ctx, dataset_row)
    out = work_dir(ctx, p.key)
    with discard_on_cancel(ctx, lambda: shutil.rmtree(out, ignore_errors=True)):
        try:
            timing = embed_rows(
                ctx, model, layout, p, out, shard=(p.start, p.stop), batch_size=p.batch_size
            )
        except ValueError as exc:  # a range outside the split: the dataset changed
            raise JobError(f"cannot embed rows {p.start}..{p.stop}: {exc}") from None
    if not ctx.storage.is_local:
        ctx.storage.put_dir(out, p.key)
        shutil.rmtree(out, ignore_errors=True)
    result: dict[str, Any] = {"index": p.index, "rows": [p.start, p.stop], "key": p.key}
    if timing is not None:
        result["timing"] = {**timing, "device": str(model.device)}
    return Outcome(result)


def _children(ctx: JobContext) -> list[Shard]:
    with session_scope(ctx.sessions) as session:
        kids = [
            Shard(j.id, int(j.params["index"]), int(j.params["start"]), int(j.params["stop"]),
                  j.params["key"], j.status, j.worker_id, j.result, j.error)
            for j in children_of(session, ctx.job_id)
            if j.type == EMBED_SHARD.name
        ]  # fmt: skip
    return sorted(kids, key=lambda k: k.index)


def _gather(ctx: JobContext, p: EmbedParams, kids: list[Shard]) -> Outcome | Waiting:
    """Wait while a shard is left to run; fail naming the shards that failed; else merge."""
    done = sum(k.status in FINAL for k in kids)
    if done < len(kids):
        detail = {"done": done, "total": len(kids), "unit": "shards"}
        return Waiting("waiting for shards", [], SHARDS_SHARE * done / len(kids), detail)
    failed = [k for k in kids if k.status != JobStatus.succeeded.value]
    if failed:
        _remove_shards(ctx)  # the job is final: nothing could use them
        raise JobError(_failure(ctx.job_id, p.dataset_id, kids, failed)[:3000])
    with discard_on_cancel(ctx, lambda: _remove_shards(ctx)):
        return _merge(ctx, p, kids)


def _failure(job_id: str, dataset_id: str, kids: list[Shard], failed: list[Shard]) -> str:
    """The parent's error: each distinct (status, error) once, with the shards (0-based, as
    `result.shards[].index`) it befell: "shards 0–3 failed: ..." rather than four copies."""
    groups: dict[tuple[str, str], list[Shard]] = {}
    for k in failed:
        groups.setdefault((k.status, k.error or "no error recorded"), []).append(k)
    parts = []
    for (status, error), group in groups.items():
        if len(group) == 1:
            (k,) = group
            who = f"shard {k.index} (rows {k.start}..{k.stop}, job {k.job_id})"
        else:
            who = f"shards {_index_ranges([k.index for k in group])}"
        parts.append(f"{who} {status}: {error}")
    head = (
        f"embedding dataset {dataset_id} in {len(kids)} shards (index 0–{len(kids) - 1}; "
        f"jobs with parent_id {job_id}) failed: "
    )
    return head + "; ".join(parts)


def _index_ranges(indexes: list[int]) -> str:
    """[0, 1, 2, 3, 5] -> "0–3, 5"."""
    runs: list[list[int]] = []
    for i in sorted(indexes):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs)


def _merge(ctx: JobContext, p: EmbedParams, kids: list[Shard]) -> Outcome:
    """Merge the shards into one run, store it as the embedding (unless the same run is
    stored there already), and remove the shards once the job's success is committed."""
    from workers.ml.shards import merge_shards

    model_row, dataset_row = load_rows(ctx, p.model_id, p.dataset_id)
    names = ref_names(model_row, dataset_row)
    summary = [
        {"index": k.index, "rows": [k.start, k.stop], "job_id": k.job_id, "worker": k.worker,
         "timing": (k.result or {}).get("timing")}
        for k in kids
    ]  # fmt: skip
    if (stored := stored_embedding(ctx, p)) is not None:  # another job stored it meanwhile
        result = {**stored, **names, "reused": True, "shards": summary,
                  "timing": shards_timing(summary, None)}  # fmt: skip
        return Outcome(result, after_commit=lambda: _remove_shards(ctx))
    ctx.progress(SHARDS_SHARE, "merging shards", done=len(kids), total=len(kids), unit="shards")
    merged_dir = ctx.settings.data_dir / "work" / "merge" / ctx.job_id
    shutil.rmtree(merged_dir, ignore_errors=True)
    started = time.perf_counter()
    try:
        merged = merge_shards(
            [ctx.storage.local_dir(k.key) for k in kids], merged_dir,
            job_ids=[k.job_id for k in kids],
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        _remove_shards(ctx)
        raise JobError(f"cannot merge the shards of dataset {p.dataset_id}: {exc}") from None
    meta = merged.meta
    key = embedding_key(meta["model_fingerprint"], meta["dataset_fingerprint"], p)
    timing = shards_timing(summary, time.perf_counter() - started)
    outcome = stored_outcome(ctx, p, key, merged_dir, {**names, "shards": summary,
                                                       "timing": timing})  # fmt: skip
    if _stored_run_key(ctx, key) != meta["run_key"]:
        ctx.storage.put_dir(merged_dir, key)  # moved when local
    shutil.rmtree(merged_dir, ignore_errors=True)
    outcome.after_commit = lambda: _remove_shards(ctx)
    return outcome


def shards_timing(shards: list[dict[str, Any]], merge_s: float | None) -> dict[str, Any] | None:
    """A sharded embed job's `timing` (`app.jobs.types.EmbedTiming`) from its shards' (those
    that embedded something) and the merge's seconds (None: no merge ran); None when no shard
    embedded anything.

    Counts (images, batches) and stage seconds are summed over the shards; so is `seconds`,
    worker time rather than wall time, whence `images_per_second` is one worker's rate as in
    an unsharded job's. `critical_path_s` is the slowest shard's loop plus the merge: the
    least wall time with a worker per shard, model loads and queueing left out (the job's
    `created_at` and `finished_at` give the elapsed time).
    """
    timed = [s["timing"] for s in shards if s.get("timing")]
    if not timed:
        return None
    total = sum(float(t["seconds"]) for t in timed)
    images = sum(int(t["images"]) for t in timed)
    merge = None if merge_s is None else round(merge_s, 4)
    out: dict[str, Any] = {
        "images": images,
        "batches": sum(int(t.get("batches") or 0) for t in timed),
        "seconds": round(total, 4),
        "images_per_second": round(images / max(total, 1e-9), 1),
        "workers": max(int(t.get("workers") or 0) for t in timed),
        "device": ", ".join(sorted({str(t.get("device")) for t in timed})),
        **{f"{stage}_s": round(sum(float(t.get(f"{stage}_s") or 0.0) for t in timed), 4)
           for stage in ("loader", "submit", "device", "store")},
        "shards": len(timed),
        "merge_s": merge,
        "critical_path_s": round(max(float(t["seconds"]) for t in timed) + (merge or 0.0), 4),
    }  # fmt: skip
    return out


def _stored_run_key(ctx: JobContext, key: str) -> str | None:
    """The run key of the completed run stored under `key`, if any (the same content embedded
    before, e.g. a copy of the dataset: its files are kept, not rewritten under a reader)."""
    try:
        meta = json.loads(ctx.storage.fs.cat_file(ctx.storage.path(f"{key}/meta.json")))
    except (FileNotFoundError, ValueError):
        return None
    return meta.get("run_key") if isinstance(meta, dict) else None


def _remove_shards(ctx: JobContext) -> None:
    """Remove the job's shards from the store and this worker's cache of remote artifacts."""
    ctx.storage.delete(shards_key(ctx.job_id))
    if not ctx.storage.is_local:
        ctx.storage.cache.discard(shards_key(ctx.job_id))
        shutil.rmtree(ctx.settings.data_dir / "work" / shards_key(ctx.job_id), ignore_errors=True)
