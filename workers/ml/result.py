"""`EmbedResult`: what an embedding run produced, read back from its directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.measures import ModalityStats
from workers.ml.store import IMAGES, INDEX, LABELS, META, STATS, TEXTS, TOPK, read_json


@dataclass
class EmbedResult:
    """A completed run: its directory, metadata (zero-shot accuracy, measures) and arrays."""

    out_dir: Path
    meta: dict[str, Any]
    # Where this call's embedding time went (workers.ml.loop.Stages.to_dict): images,
    # seconds, images/s, workers and the loader/submit/device/store seconds. Only for a
    # call that embedded something (None when the run was already complete); a resumed run
    # counts only its remaining batches. Not stored: meta.json holds what the bytes depend on.
    timing: dict[str, Any] | None = None

    @property
    def n(self) -> int:
        return int(self.meta["n"])

    @property
    def zero_shot(self) -> dict[str, float]:
        return dict(self.meta["zero_shot"])

    @property
    def measures(self) -> dict[str, float]:
        return dict(self.meta["measures"])

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return list(self.meta["skipped"])

    def images(self) -> np.ndarray:
        """Image embeddings, n x d float16, memory-mapped."""
        return np.load(self.out_dir / IMAGES, mmap_mode="r")

    def labels(self) -> np.ndarray:
        return np.load(self.out_dir / LABELS)

    def texts(self) -> np.ndarray:
        return np.load(self.out_dir / TEXTS)

    def topk(self) -> np.ndarray:
        return np.load(self.out_dir / TOPK)

    def index(self) -> np.ndarray:
        """Position in the split of each stored row."""
        return np.load(self.out_dir / INDEX)

    def stats(self) -> ModalityStats:
        return ModalityStats.from_dict(read_json(self.out_dir / STATS))


def load_result(out_dir: str | Path) -> EmbedResult:
    """Read a completed run's directory; FileNotFoundError when it has no meta.json yet."""
    out = Path(out_dir)
    return EmbedResult(out, read_json(out / META))
