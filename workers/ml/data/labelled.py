"""A labelled split of a dataset layout as a map-style torch dataset, for fine-tuning and
evaluation (`workers.ml.finetune`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LabelledImages:
    """``(preprocess(image), label)`` over the items of one split of a dataset layout."""

    def __init__(self, layout: Any, split: str, preprocess: Callable[[Any], Any]) -> None:
        rows = layout.split(split)
        self.source, self.items = layout.source, list(rows.items)
        self.labels = [int(v) for v in rows.labels]
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.preprocess(self.source.open(self.items[index])), self.labels[index]
