"""The shape every dataset reader produces: class names, splits of (item, label), a source.

A `DatasetLayout` is plain data (picklable, torch-free): the API validates uploads with it and
the workers build torch Datasets on top of it. Items are whatever its `ImageSource` opens:
relative file paths for folders, row numbers for manifests with image bytes, indices for
torchvision datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from app.imagedata.decode import decode_image


class ImageSource(Protocol):
    """Opens one item of a dataset as an RGB image (must be picklable for worker processes)."""

    def open(self, item: Any) -> Image.Image: ...

    def describe(self, item: Any) -> str: ...


@dataclass(frozen=True)
class FileSource:
    """Items are paths relative to `root`."""

    root: Path

    def open(self, item: str) -> Image.Image:
        return decode_image(self.root / item, name=item)

    def describe(self, item: str) -> str:
        return str(item)


@dataclass
class Split:
    """One split: parallel sequences of items and integer labels."""

    name: str
    items: Sequence[Any]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, name: str, index: np.ndarray) -> Split:
        """The split restricted to positions `index` (kept in the given order)."""
        return Split(name, [self.items[i] for i in index], self.labels[index])

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.labels, minlength=num_classes).tolist()


@dataclass
class DatasetLayout:
    """A classification dataset: class names, named splits, how to open items, a fingerprint."""

    kind: str
    location: str
    class_names: list[str]
    splits: dict[str, Split]
    source: ImageSource
    fingerprint: str = ""
    name: str | None = None
    derived: dict[str, str] = field(default_factory=dict)
    #: Files of the upload not used, grouped by reason (see ``folders.skipped_files``).
    skipped: list[dict[str, Any]] = field(default_factory=list)
    #: ``[{"code", "detail", "items"}]``: what a user should know (e.g. tiny test classes).
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str, *, nonempty: bool = False) -> Split:
        """The split called `name`; LayoutError listing the available ones otherwise, and
        (with `nonempty`) when it has no images, naming the splits that have some."""
        from app.imagedata.errors import LayoutError

        if name not in self.splits:
            raise LayoutError(f"dataset has no split {name!r}; available: {sorted(self.splits)}")
        if nonempty and len(self.splits[name]) == 0:
            raise LayoutError(empty_split_message(
                name, repr(self.name), {k: len(v) for k, v in self.splits.items()}
            ))  # fmt: skip
        return self.splits[name]

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: classes, split sizes and per-class counts, fingerprint."""
        return {
            "kind": self.kind,
            "name": self.name,
            "location": self.location,
            "fingerprint": self.fingerprint,
            "class_names": list(self.class_names),
            "splits": {
                name: {"size": len(s), "class_counts": s.class_counts(self.num_classes)}
                for name, s in self.splits.items()
            },
            "derived_splits": dict(self.derived),
            "skipped": list(self.skipped),
            "warnings": list(self.warnings),
        }


def empty_split_message(split: str, dataset: str, sizes: dict[str, int]) -> str:
    """Why a job cannot read `split` of `dataset` (a name or id) whose split sizes (images
    per split) are `sizes`, where ``sizes[split] == 0``."""
    usable = ", ".join(f"{k} ({n})" for k, n in sorted(sizes.items()) if n > 0) or "none"
    return (
        f"split {split!r} of dataset {dataset} has 0 images; a job needs at least one: "
        f"use a split that has images ({usable}) or upload a dataset with images in "
        f"{split!r}"
    )
