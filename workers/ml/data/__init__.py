"""Dataset access for the workers: every reader of `app.imagedata` plus torchvision's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.imagedata import DatasetLayout, open_dataset
from workers.ml.data.torchvision_sets import DATASETS as TORCHVISION_DATASETS
from workers.ml.data.torchvision_sets import PREFIX as TORCHVISION_PREFIX
from workers.ml.data.torchvision_sets import open_torchvision

__all__ = ["TORCHVISION_DATASETS", "open_any"]


def open_any(location: str | Path, **options: Any) -> DatasetLayout:
    """Open ``torchvision:NAME@ROOT`` or any path `app.imagedata.open_dataset` reads."""
    if str(location).startswith(TORCHVISION_PREFIX):
        keep = {
            k: options[k] for k in ("seed", "test_fraction", "fingerprint_mode") if k in options
        }
        return open_torchvision(str(location), **keep)
    return open_dataset(location, **options)
