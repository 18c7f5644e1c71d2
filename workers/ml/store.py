"""On-disk layout of one embedding run, written incrementally and resumable.

``images.npy`` (n x d float16) and ``topk.npy`` (n x min(5,k) int32) are preallocated with
``np.lib.format.open_memmap`` and filled batch by batch; ``labels.npy`` and ``index.npy``
(row -> position in the split) are known up front. ``progress.json`` (atomically replaced)
records the completed batches and the statistics so far; ``meta.json`` is written last and
marks the run complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.measures import ModalityStats

IMAGES, LABELS, TEXTS, TOPK, INDEX = (
    "images.npy",
    "labels.npy",
    "texts.npy",
    "topk.npy",
    "index.npy",
)
META, STATS, PROGRESS = "meta.json", "stats.json", "progress.json"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, fsync, rename), so readers never see half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


@dataclass
class RunState:
    """Where an interrupted run stands: batches done, statistics, skipped files."""

    run_key: str
    batches_done: int = 0
    stats: ModalityStats | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_key": self.run_key,
            "batches_done": self.batches_done,
            "stats": self.stats.to_dict() if self.stats else None,
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        stats = ModalityStats.from_dict(d["stats"]) if d.get("stats") else None
        return cls(d["run_key"], int(d["batches_done"]), stats, list(d.get("skipped", [])))


class RunArrays:
    """The memory-mapped output arrays of a run (created fresh or reopened to resume)."""

    def __init__(self, out: Path, n: int, dim: int, kk: int, *, fresh: bool) -> None:
        mode = "w+" if fresh else "r+"
        fmt = np.lib.format
        self.images = fmt.open_memmap(out / IMAGES, mode, np.float16, (n, dim) if fresh else None)
        self.topk = fmt.open_memmap(out / TOPK, mode, np.int32, (n, kk) if fresh else None)
        if self.images.shape != (n, dim) or self.topk.shape != (n, kk):
            raise ValueError(
                f"arrays in {out} do not match this run; delete them or use a new out_dir"
            )

    def flush(self) -> None:
        self.images.flush()
        self.topk.flush()

    def close(self) -> None:
        self.flush()
        del self.images, self.topk


def load_progress(out: Path, run_key: str) -> RunState | None:
    """The saved state of an interrupted run with the same key, if any."""
    path = out / PROGRESS
    if not path.is_file() or not (out / IMAGES).is_file():
        return None
    state = RunState.from_dict(read_json(path))
    return state if state.run_key == run_key else None


def compact(out: Path, keep: np.ndarray) -> None:
    """Drop the rows of skipped (undecodable) images from every per-row array."""
    for name in (IMAGES, TOPK, LABELS, INDEX):
        arr = np.load(out / name, mmap_mode="r")
        kept = np.ascontiguousarray(arr[keep])
        del arr
        tmp = out / (name + ".tmp.npy")
        np.save(tmp, kept)
        os.replace(tmp, out / name)
