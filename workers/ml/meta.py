"""The last step of a run: compact skipped rows, save texts and statistics, write meta.json."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from app.imagedata.layout import DatasetLayout
from app.imagedata.prompts import render_prompts
from app.measures import ModalityStats
from workers.ml.models import LoadedModel
from workers.ml.result import EmbedResult
from workers.ml.store import (
    LABELS,
    META,
    PROGRESS,
    STATS,
    TEXTS,
    TOPK,
    RunArrays,
    RunState,
    compact,
    write_json,
)
from workers.ml.text import prompt_report, prompt_warnings
from workers.ml.zeroshot import zero_shot_metrics


def versions() -> dict[str, str]:
    """Versions of the software that produced an artifact."""
    out = {"python": platform.python_version()}
    for dist in ("torch", "torchvision", "open_clip_torch", "numpy", "Pillow", "iimm-service"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def measures_of(stats: ModalityStats, texts: np.ndarray) -> dict[str, float]:
    """The additive measures, or an empty dict when there are too few images."""
    try:
        return stats.result(texts.astype(np.float32))
    except ValueError:
        return {}


def split_warnings(labels: np.ndarray, class_names: list[str], split: str) -> list[str]:
    """A sentence naming the classes with fewer than 2 images among `labels` (shape (n,),
    class indexes), which must be all the stored rows of `split`: a shard's rows would name
    classes that other shards hold (`workers.ml.shards.merge_shards` says it for the whole)."""
    counts = np.bincount(labels.astype(np.int64), minlength=len(class_names))
    small = [n for n, c in zip(class_names, counts.tolist(), strict=True) if c < 2]
    if not small:
        return []
    return [
        f"{len(small)} classes have fewer than 2 images in split {split!r}: {small[:20]}; "
        "their accuracy and class statistics rest on one image or none"
    ]


def finalise_run(
    out: Path,
    arrays: RunArrays,
    texts: np.ndarray,
    state: RunState,
    run: dict[str, Any],
    dataset: DatasetLayout,
    model: LoadedModel,
    templates: list[str],
) -> EmbedResult:
    """Write texts.npy, stats.json and meta.json (last: it marks the run complete)."""
    arrays.close()
    if state.skipped:
        keep = np.ones(len(np.load(out / LABELS, mmap_mode="r")), dtype=bool)
        keep[[s["row"] for s in state.skipped]] = False
        compact(out, keep)
    np.save(out / TEXTS, texts)
    assert state.stats is not None
    write_json(out / STATS, state.stats.to_dict())
    labels = np.load(out / LABELS)
    zero_shot = zero_shot_metrics(np.load(out / TOPK), labels, dataset.num_classes)
    start, stop = run["shard"]
    n_split = len(dataset.split(run["split"]))
    report = prompt_report(model, dataset.class_names, templates)
    warnings = prompt_warnings(report)
    if (start, stop) == (0, n_split):  # a shard's rows are not the split: the merge judges
        warnings += split_warnings(labels, list(dataset.class_names), run["split"])
    meta = {
        **run,
        "n": len(labels),
        "dim": int(model.embed_dim),
        "n_split": n_split,
        "class_names": list(dataset.class_names),
        "prompts": render_prompts(templates, dataset.class_names),
        "prompt_report": report,
        "warnings": warnings,
        "zero_shot": zero_shot,
        "measures": measures_of(state.stats, texts),
        "skipped": [{"index": s["row"] + start, "error": s["error"]} for s in state.skipped],
        "model": {
            "spec": model.spec.spec,
            "canonical": model.spec.canonical,
            "fingerprint": model.fingerprint,
            "device": str(model.device),
        },
        "dataset": {
            "name": dataset.name,
            "kind": dataset.kind,
            "location": dataset.location,
            "fingerprint": dataset.fingerprint,
            "derived_splits": dataset.derived,
        },
        "dtype": "float16",
        "versions": versions(),
    }
    write_json(out / META, meta)
    (out / PROGRESS).unlink(missing_ok=True)
    return EmbedResult(out, meta)
