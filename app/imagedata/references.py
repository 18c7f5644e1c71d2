"""Dataset references that name torchvision's built-in datasets (torch-free).

``torchvision://CIFAR100?root=/data/cifar`` is the REST form; the workers open it as
``torchvision:CIFAR100@/data/cifar`` (`workers.ml.data.open_any`) from files already on disk
in the layout torchvision's own ``download=True`` creates. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

from app.imagedata.errors import LayoutError

TORCHVISION_DATASETS: tuple[str, ...] = (
    "CIFAR100",
    "MNIST",
    "SVHN",
    "DTD",
    "EuroSAT",
    "GTSRB",
    "SUN397",
    "StanfordCars",
    "STL10",
    "ImageNet",
)


def parse_torchvision_uri(uri: str) -> tuple[str, Path]:
    """(dataset name, local root) of ``torchvision://NAME?root=/path``; LayoutError if malformed."""
    parsed = urlparse(uri)
    if parsed.scheme != "torchvision":
        raise LayoutError(f"{uri} is not a torchvision:// reference")
    name = parsed.netloc or parsed.path.strip("/")
    if name not in TORCHVISION_DATASETS:
        valid = ", ".join(TORCHVISION_DATASETS)
        raise LayoutError(f"unknown torchvision dataset {name!r}; supported: {valid}")
    roots = parse_qs(parsed.query).get("root", [])
    if len(roots) != 1 or not roots[0].startswith("/"):
        raise LayoutError(
            f"{uri} needs exactly one absolute local root: torchvision://{name}?root=/path/to/files"
        )
    return name, Path(roots[0])


def worker_location(uri: str) -> str:
    """The ``torchvision:NAME@ROOT`` form that `workers.ml.data.open_any` reads."""
    name, root = parse_torchvision_uri(uri)
    return f"torchvision:{name}@{root}"
