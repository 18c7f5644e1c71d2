"""Sharded embedding: cut a split into batch-aligned index ranges, merge the runs' outputs.

Shards cut at multiples of the batch size run exactly the batches one whole run would, so
the merged arrays are the same bytes as an unsharded run's. The statistics are summed again
from the merged float16 rows, batch by batch in the whole run's order, so they are the same
float64 bytes too (adding the shards' sums would differ in the last bits: float64 addition is
not associative), and meta.json carries the whole run's `run_key`, so `embed_dataset` takes
the merged directory for a completed whole run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.measures import ModalityStats
from workers.ml.meta import measures_of, split_warnings, versions
from workers.ml.result import EmbedResult, load_result
from workers.ml.store import IMAGES, INDEX, LABELS, META, STATS, TEXTS, TOPK, write_json
from workers.ml.text import prompt_warnings
from workers.ml.zeroshot import zero_shot_metrics

_SAME = (
    "model_fingerprint",
    "dataset_fingerprint",
    "split",
    "templates",
    "batch_size",
    "on_error",
    "device_type",
    "autocast",
    "n_split",
    "dim",
    "class_names",
    "preprocess",
    "decoder",
)
#: The entries of meta.json that make up a run's key (`workers.ml.embed._describe_run`);
#: "preprocess" and "decoder" only where the run has them (device-mode runs).
_RUN = (
    "model_fingerprint",
    "dataset_fingerprint",
    "split",
    "templates",
    "shard",
    "batch_size",
    "on_error",
    "device_type",
    "autocast",
    "preprocess",
)


def plan_shards(n: int, num_shards: int, batch_size: int) -> list[tuple[int, int]]:
    """About equal, non-empty ranges covering 0..n, each starting at a multiple of batch_size."""
    batches = -(-n // batch_size)
    per = -(-batches // max(1, num_shards))
    cuts = [min(i * per * batch_size, n) for i in range(num_shards + 1)]
    return [(a, b) for a, b in itertools.pairwise(cuts) if a < b]


def _check_shards(metas: list[dict[str, Any]]) -> None:
    first = metas[0]
    for m in metas[1:]:
        diff = [k for k in _SAME if m.get(k) != first.get(k)]
        if diff:
            raise ValueError(f"shards differ in {diff}; they are not parts of one run")
    pos = 0
    for m in metas:
        a, b = m["shard"]
        if a != pos:
            raise ValueError(f"shards are not contiguous: expected one starting at {pos}, got {a}")
        pos = b
    if pos != first["n_split"]:
        raise ValueError(f"shards cover rows 0..{pos} of a split of {first['n_split']} rows")


def _concat(dirs: list[Path], name: str, out: Path) -> None:
    """Concatenate one per-row array of every shard into out/name, streaming."""
    parts = [np.load(d / name, mmap_mode="r") for d in dirs]
    total = sum(p.shape[0] for p in parts)
    merged = np.lib.format.open_memmap(
        out / name, "w+", parts[0].dtype, (total, *parts[0].shape[1:])
    )
    pos = 0
    for p in parts:
        merged[pos : pos + p.shape[0]] = p
        pos += p.shape[0]
    merged.flush()
    del merged


def merge_shards(
    shard_dirs: Sequence[str | Path], out_dir: str | Path, *, job_ids: Sequence[str] | None = None
) -> EmbedResult:
    """Merge completed shard runs (any order) into one run directory `out_dir`.

    Its meta.json is the one a single run of the whole split writes (`embed_dataset`), the
    warnings about the split's classes judged on the merged rows, plus ``merged_from``: per
    shard, in row order, its ``index``, ``rows`` [start, stop) and, when `job_ids` (one per
    directory, in the same order) is given, the ``job_id`` that embedded it; never the
    directories, which are gone once merged. ValueError when the runs are not contiguous parts
    of one run; FileNotFoundError when one is incomplete.
    """
    if job_ids is not None and len(job_ids) != len(shard_dirs):
        raise ValueError(f"{len(job_ids)} job ids for {len(shard_dirs)} shards")
    loaded = [(load_result(d), None if job_ids is None else job_ids[i])
              for i, d in enumerate(shard_dirs)]  # fmt: skip
    loaded.sort(key=lambda rj: rj[0].meta["shard"][0])
    results = [r for r, _ in loaded]
    if not results:
        raise ValueError("no shards to merge")
    metas = [r.meta for r in results]
    _check_shards(metas)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dirs = [r.out_dir for r in results]
    for name in (IMAGES, LABELS, TOPK, INDEX):
        _concat(dirs, name, out)
    texts = results[0].texts()
    if any(not np.array_equal(texts, r.texts()) for r in results[1:]):
        raise ValueError("shards have different text embeddings")
    np.save(out / TEXTS, texts)
    first = metas[0]
    stats = replay_stats(out, int(first["batch_size"]), len(first["class_names"]), first["dim"])
    if stats.counts.tolist() != _merge_stats([r.stats() for r in results]).counts.tolist():
        raise ValueError("the shards' class counts do not add up to their rows' labels")
    write_json(out / STATS, stats.to_dict())
    labels = np.load(out / LABELS)
    sources = [{"index": i, "rows": list(r.meta["shard"]), **({"job_id": j} if j else {})}
               for i, (r, j) in enumerate(loaded)]  # fmt: skip
    meta = {
        **first,
        "shard": [0, first["n_split"]],
        "n": len(labels),
        "warnings": prompt_warnings(first.get("prompt_report") or {})
        + split_warnings(labels, first["class_names"], first["split"]),
        "merged_from": sources,
        "versions": versions(),
        "skipped": [s for m in metas for s in m["skipped"]],
        "measures": measures_of(stats, texts),
        "zero_shot": zero_shot_metrics(np.load(out / TOPK), labels, len(first["class_names"])),
    }
    meta["run_key"] = _run_key(meta)
    write_json(out / META, meta)
    return EmbedResult(out, meta)


def replay_stats(run_dir: Path, batch_size: int, num_classes: int, dim: int) -> ModalityStats:
    """The statistics of a run directory's float16 rows, accumulated batch by batch as
    `embed_dataset` does (batch j holds split rows j·batch_size .. (j+1)·batch_size - 1 that
    were stored), so the float64 sums come out bit for bit as that run's."""
    images = np.load(run_dir / IMAGES, mmap_mode="r")
    labels = np.load(run_dir / LABELS)
    batch = np.load(run_dir / INDEX) // batch_size
    cuts = [0, *(np.flatnonzero(np.diff(batch)) + 1).tolist(), len(batch)]
    stats = ModalityStats(num_classes, dim)
    for a, b in itertools.pairwise(cuts):
        if a < b:
            stats.update(np.ascontiguousarray(images[a:b]), labels[a:b], row_offset=a)
    return stats


def _run_key(meta: dict[str, Any]) -> str:
    """The key `embed_dataset` gives the whole run these shards are the parts of."""
    body = {k: meta[k] for k in _RUN if k in meta}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _merge_stats(parts: list[ModalityStats]) -> ModalityStats:
    total = parts[0]
    for p in parts[1:]:
        total = total.merge(p)
    return total
