"""torchvision:// dataset references: parsing, clear errors, and the names the workers read."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.imagedata import LayoutError
from app.imagedata.references import (
    TORCHVISION_DATASETS,
    parse_torchvision_uri,
    worker_location,
)


def test_parses_name_and_root() -> None:
    assert parse_torchvision_uri("torchvision://CIFAR100?root=/data/cifar") == (
        "CIFAR100",
        Path("/data/cifar"),
    )
    assert worker_location("torchvision://MNIST?root=/d/m") == "torchvision:MNIST@/d/m"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("torchvision://Places365?root=/data", "unknown torchvision dataset 'Places365'"),
        ("torchvision://MNIST", "needs exactly one absolute local root"),
        ("torchvision://MNIST?root=relative/dir", "needs exactly one absolute local root"),
        ("torchvision://MNIST?root=/a&root=/b", "needs exactly one absolute local root"),
        ("file:///data", "is not a torchvision:// reference"),
    ],
)
def test_malformed_references_say_what_to_write(uri: str, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        parse_torchvision_uri(uri)


def test_the_api_accepts_exactly_the_datasets_the_workers_can_open() -> None:
    from workers.ml.data.torchvision_sets import DATASETS

    assert set(TORCHVISION_DATASETS) == set(DATASETS)
