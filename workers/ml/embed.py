"""`embed_dataset`: one forward pass over a dataset split, producing everything IIMM needs.

Images are decoded and preprocessed in DataLoader worker processes and encoded in batches
under `torch.inference_mode` (bf16 autocast on CUDA). Each batch's normalised embeddings are
rounded to float16 and written to ``images.npy`` at once; the zero-shot top-5 predictions and
the measures' sufficient statistics (`app.measures.ModalityStats`) are computed from those
same float16 rows, so everything stored agrees exactly with what is recomputed from disk.

Batches sit on a grid aligned to multiples of ``batch_size`` in the split, so an interrupted
run resumed from its last checkpoint, or shards cut at multiples of the batch size and
merged, produce the same bytes as one uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.imagedata.layout import DatasetLayout
from app.imagedata.prompts import render_prompts, resolve_templates
from app.measures import ModalityStats
from workers.ml.gpu_preprocess import resolve_preprocess
from workers.ml.loop import BatchLoop, Progress, batch_grid
from workers.ml.meta import finalise_run
from workers.ml.models import LoadedModel
from workers.ml.result import EmbedResult, load_result
from workers.ml.store import INDEX, LABELS, META, RunArrays, RunState, load_progress
from workers.ml.store import PROGRESS as PROGRESS_FILE
from workers.ml.text import encode_class_texts
from workers.ml.zeroshot import TOPK

__all__ = ["EmbedResult", "batch_grid", "embed_dataset", "load_result"]


def embed_dataset(
    model: LoadedModel,
    dataset: DatasetLayout,
    *,
    split: str = "test",
    out_dir: str | Path,
    prompts: Sequence[str] | str | None = None,
    batch_size: int = 256,
    num_workers: int | None = None,
    shard: tuple[int, int] | None = None,
    resume: bool = True,
    progress: Progress | None = None,
    on_error: str = "fail",
    checkpoint_every_s: float = 30.0,
    preprocess: str = "auto",
) -> EmbedResult:
    """Embed rows ``shard = (start, stop)`` (default: all) of `split` into `out_dir`.

    `prompts` are templates with ``{c}`` or an ensemble name (``clip_imagenet_80``, ...: see
    `app.imagedata.prompts.resolve_templates`; default: the dataset's single template); with
    several, class embeddings are averaged then renormalised. `on_error` is "fail" (raise,
    naming the undecodable files) or "skip" (drop them, listed in meta.json). A completed
    run with the same inputs is returned as is; an interrupted one continues from its last
    checkpoint unless ``resume=False``. `preprocess` is "cpu" (decode, resize and crop in
    the DataLoader workers with Pillow), "device" (workers only decode; resize, crop and
    normalisation run batched on the model's device) or "auto" (device on CUDA when the
    model's transform allows it, cpu otherwise); the two give slightly different bytes, so
    the mode is part of the run key.
    """
    report = progress or (lambda fraction, stage, **units: None)
    rows = dataset.split(split, nonempty=True)  # LayoutError (a user's fault) when empty
    start, stop = _check_shard(shard, len(rows), batch_size)
    if on_error not in ("fail", "skip"):
        raise ValueError("on_error must be 'fail' or 'skip'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    templates = resolve_templates(prompts, dataset.name)
    render_prompts(templates, dataset.class_names)  # validates the templates early
    mode = resolve_preprocess(preprocess, model.preprocess, model.device)
    run = _describe_run(model, dataset, split, templates, (start, stop), batch_size, on_error)
    if mode == "device":  # only then, so the keys of existing "cpu" runs stay valid
        # "decoder": device-mode workers decode with Pillow since torchvision's decoders were
        # dropped (its JPEG bytes differ), so an older device run is never resumed into this one
        run = _rekey({**run, "preprocess": mode, "decoder": "pillow"})
    if (out / META).is_file() and resume:
        done = load_result(out)
        if done.meta.get("run_key") == run["run_key"]:
            return done
    report(0.0, "text")
    texts = encode_class_texts(model, dataset.class_names, templates).astype(np.float16)
    state = load_progress(out, run["run_key"]) if resume else None
    labels = rows.labels[start:stop]
    arrays = _open_arrays(out, labels, start, model.embed_dim, len(dataset.class_names), state)
    state = state or RunState(
        run["run_key"], 0, ModalityStats(len(dataset.class_names), model.embed_dim)
    )
    loop = BatchLoop(
        model, dataset, rows.items, (start, stop), batch_size, num_workers, on_error, mode
    )
    timing = loop.run(
        arrays, labels, texts, state, out=out, every_s=checkpoint_every_s, report=report
    )
    report(1.0, "finalising")
    result = finalise_run(out, arrays, texts, state, run, dataset, model, templates)
    result.timing = timing
    report(1.0, "done")
    return result


def _check_shard(shard: tuple[int, int] | None, n: int, batch_size: int) -> tuple[int, int]:
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    start, stop = shard if shard is not None else (0, n)
    if not 0 <= start < stop <= n:
        raise ValueError(f"shard {shard} is not a non-empty range within 0..{n}")
    return int(start), int(stop)


def _describe_run(
    model: LoadedModel,
    dataset: DatasetLayout,
    split: str,
    templates: list[str],
    shard: tuple[int, int],
    batch_size: int,
    on_error: str,
) -> dict[str, Any]:
    """The inputs that determine the output bytes, and their hash (the run key)."""
    run = {
        "model_fingerprint": model.fingerprint,
        "dataset_fingerprint": dataset.fingerprint,
        "split": split,
        "templates": templates,
        "shard": list(shard),
        "batch_size": batch_size,
        "on_error": on_error,
        "device_type": model.device.type,
        "autocast": str(model.autocast_dtype),
    }
    return _rekey(run)


def _rekey(run: dict[str, Any]) -> dict[str, Any]:
    """`run` with ``run_key`` set to the hash of its other entries."""
    body = {k: v for k, v in run.items() if k != "run_key"}
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {**body, "run_key": key}


def _open_arrays(
    out: Path, labels: np.ndarray, start: int, dim: int, k: int, state: RunState | None
) -> RunArrays:
    n = len(labels)
    if state is None:
        (out / PROGRESS_FILE).unlink(missing_ok=True)
        (out / META).unlink(missing_ok=True)
        np.save(out / LABELS, labels.astype(np.int64))
        np.save(out / INDEX, np.arange(start, start + n, dtype=np.int64))
    return RunArrays(out, n, dim, min(TOPK, k), fresh=state is None)
