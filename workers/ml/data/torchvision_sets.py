"""torchvision's built-in datasets read from a local root, never downloaded.

``torchvision:NAME@ROOT`` (e.g. ``torchvision:MNIST@/data/mnist``) opens NAME from ROOT in
the on-disk layout torchvision's own ``download=True`` produces. Splits a dataset lacks
(EuroSAT, SUN397 have none) are derived like any other dataset's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.imagedata.classnames import DIGITS, EUROSAT, GTSRB
from app.imagedata.decode import decode_image, to_rgb
from app.imagedata.errors import DecodeError, LayoutError
from app.imagedata.fingerprint import files_digest
from app.imagedata.imagenet import class_name_of_wnid
from app.imagedata.layout import DatasetLayout, Split
from app.imagedata.open import build_layout

PREFIX = "torchvision:"


def _targets(ds: Any) -> list[int]:
    return [int(t) for t in ds.targets]


def _labels(ds: Any) -> list[int]:
    return [int(t) for t in ds.labels]


def _private_labels(ds: Any) -> list[int]:
    return [int(t) for t in ds._labels]


def _sample_labels(ds: Any) -> list[int]:
    return [int(t) for _, t in ds._samples]


def _own_classes(ds: Any) -> list[str]:
    return [str(c).replace("_", " ") for c in ds.classes]


@dataclass(frozen=True)
class TorchvisionSpec:
    """How to build one torchvision dataset class per split and read its labels and classes."""

    splits: dict[str, dict[str, Any]]
    labels: Callable[[Any], list[int]]
    classes: Callable[[Any], list[str]]
    file_based: bool = False
    #: False for readers without a ``download`` argument (ImageNet never downloads).
    takes_download: bool = True


_TT = {"train": {"train": True}, "test": {"train": False}}
_ST = {"train": {"split": "train"}, "test": {"split": "test"}}
DATASETS: dict[str, TorchvisionSpec] = {
    "CIFAR100": TorchvisionSpec(_TT, _targets, _own_classes),
    "MNIST": TorchvisionSpec(_TT, _targets, lambda ds: list(DIGITS)),
    "SVHN": TorchvisionSpec(_ST, _labels, lambda ds: list(DIGITS)),
    "DTD": TorchvisionSpec({**_ST, "val": {"split": "val"}}, _private_labels, _own_classes, True),
    "EuroSAT": TorchvisionSpec(
        {"all": {}}, _targets, lambda ds: [EUROSAT[c] for c in ds.classes], True
    ),
    "GTSRB": TorchvisionSpec(_ST, _sample_labels, lambda ds: list(GTSRB)),
    "SUN397": TorchvisionSpec({"all": {}}, _private_labels, _own_classes, True),
    "StanfordCars": TorchvisionSpec(_ST, _sample_labels, _own_classes, True),
    "STL10": TorchvisionSpec(_ST, _labels, _own_classes),
    # ILSVRC-2012 from its local root (meta.bin or the devkit, train/ and val/ folders):
    # CLIP's class names by WordNet id; the validation set is the test split, as is usual.
    "ImageNet": TorchvisionSpec(
        {"train": {"split": "train"}, "test": {"split": "val"}},
        _targets,
        lambda ds: [class_name_of_wnid()[w] for w in ds.wnids],
        file_based=True,
        takes_download=False,
    ),
}


def robust_loader(path: str | Path) -> Image.Image:
    """torchvision ``loader`` that decodes with the project's checks and RGB conversion."""
    return decode_image(path)


def _construct(name: str, root: Path, kwargs: dict[str, Any]) -> Any:
    import torchvision.datasets as tvd

    spec = DATASETS[name]
    extra: dict[str, Any] = {"loader": robust_loader} if spec.file_based else {}
    if spec.takes_download:
        extra["download"] = False
    try:
        return getattr(tvd, name)(str(root), **kwargs, **extra)
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise LayoutError(
            f"torchvision {name} not found under {root} ({exc}); put the files there in the "
            f"layout torchvision's {name}(root, download=True) creates (no download here)"
        ) from None


@dataclass
class TorchvisionSource:
    """Items are (split key, index) pairs; one torchvision dataset object per split key."""

    name: str
    root: Path
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "root": self.root, "_cache": {}}

    def dataset(self, key: str) -> Any:
        if key not in self._cache:
            self._cache[key] = _construct(self.name, self.root, DATASETS[self.name].splits[key])
        return self._cache[key]

    def open(self, item: tuple[str, int]) -> Image.Image:
        key, index = item
        try:
            image = self.dataset(key)[int(index)][0]
        except DecodeError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise DecodeError(self.describe(item), str(exc)) from None
        return to_rgb(image)

    def describe(self, item: tuple[str, int]) -> str:
        return f"{self.name}[{item[0]}]#{item[1]}"


def parse_torchvision(spec: str) -> tuple[str, Path]:
    """``torchvision:NAME@ROOT`` -> (NAME, ROOT), checking NAME is supported."""
    name, _, root = spec.removeprefix(PREFIX).partition("@")
    if name not in DATASETS:
        raise LayoutError(
            f"unsupported torchvision dataset {name!r}; supported: {sorted(DATASETS)}"
        )
    if not root:
        raise LayoutError(f"write {PREFIX}{name}@/path/to/root (the local dataset root)")
    return name, Path(root)


def open_torchvision(
    spec: str, *, seed: int = 0, test_fraction: float = 0.2, fingerprint_mode: str = "stat"
) -> DatasetLayout:
    """Open ``torchvision:NAME@ROOT`` as a DatasetLayout (labels read without decoding)."""
    name, root = parse_torchvision(spec)
    source = TorchvisionSource(name, root)
    tv = DATASETS[name]
    splits: dict[str, Split] = {}
    for key in tv.splits:
        labels = np.asarray(tv.labels(source.dataset(key)), dtype=np.int64)
        splits[key] = Split(key, [(key, i) for i in range(len(labels))], labels)
    class_names = tv.classes(source.dataset(next(iter(tv.splits))))
    files = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
    return build_layout(
        kind=f"torchvision:{name}",
        location=str(root),
        name=name,
        class_names=class_names,
        splits=splits,
        source=source,
        seed=seed,
        test_fraction=test_fraction,
        content=files_digest(root, files, mode=fingerprint_mode),
    )
