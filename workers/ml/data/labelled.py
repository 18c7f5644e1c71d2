"""A labelled split of a dataset layout as a map-style torch dataset, for fine-tuning and
evaluation (`workers.ml.finetune`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LabelledImages:
    """``(preprocess(image), label)`` over the items of one split of a dataset layout.

    With `cache_bytes` > 0 each preprocessed image is kept after its first read while the
    kept tensors total at most `cache_bytes` (the rest are decoded on every read): a run of
    many epochs decodes each image once. Only for a deterministic `preprocess` (the models'
    evaluation transforms are: resize, crop, normalise), since a kept image is returned as
    it was first made. A DataLoader with worker processes fills one cache per worker.
    """

    def __init__(
        self, layout: Any, split: str, preprocess: Callable[[Any], Any], cache_bytes: int = 0
    ) -> None:
        rows = layout.split(split)
        self.source, self.items = layout.source, list(rows.items)
        self.labels = [int(v) for v in rows.labels]
        self.preprocess = preprocess
        self.cache_bytes = cache_bytes
        self.kept: dict[int, Any] = {}
        self.kept_bytes = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.kept.get(index)
        if image is None:
            image = self.preprocess(self.source.open(self.items[index]))
            size = _nbytes(image)
            if size is not None and self.kept_bytes + size <= self.cache_bytes:
                self.kept[index] = image
                self.kept_bytes += size
        return image, self.labels[index]


def _nbytes(image: Any) -> int | None:
    """Bytes of a tensor (or array); None for anything else (not kept)."""
    nbytes = getattr(image, "nbytes", None)
    return int(nbytes) if isinstance(nbytes, int) else None
