"""torchvision datasets read from a local root without downloading (fabricated on-disk files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.imagedata import LayoutError
from tests.fixtures.torchvision_files import fake_mnist
from workers.ml.data import open_any
from workers.ml.embed import embed_dataset
from workers.ml.models import LoadedModel


def test_mnist_from_local_raw_files(tiny_model: LoadedModel, tmp_path: Path) -> None:
    root = fake_mnist(tmp_path / "mnist")
    layout = open_any(f"torchvision:MNIST@{root}")
    assert layout.kind == "torchvision:MNIST" and layout.name == "MNIST"
    assert layout.class_names == [str(d) for d in range(10)]
    assert len(layout.split("train")) == 20 and len(layout.split("test")) == 10
    assert layout.split("test").labels.tolist() == list(range(10))
    img = layout.source.open(layout.split("test").items[3])
    assert img.mode == "RGB" and img.size == (28, 28)  # grayscale converted
    res = embed_dataset(
        tiny_model, layout, split="test", out_dir=tmp_path / "out", batch_size=4, num_workers=1
    )
    assert res.n == 10 and res.meta["prompts"][3] == ['a photo of the number: "3".']


def test_eurosat_folder_gets_derived_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = tmp_path / "eurosat" / "eurosat" / "2750"
    for cls in ("AnnualCrop", "Forest", "River"):
        for i in range(5):
            (base / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                base / cls / f"{cls}_{i}.jpg"
            )
    layout = open_any(f"torchvision:EuroSAT@{tmp_path / 'eurosat'}", seed=0)
    assert layout.class_names == ["annual crop land", "forest", "river"]
    assert len(layout.split("test")) == 3 and len(layout.split("train")) == 12
    assert "test" in layout.derived
    assert layout.source.open(layout.split("test").items[0]).mode == "RGB"


def test_missing_root_and_unknown_dataset_are_clear(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"MNIST not found under .*no download"):
        open_any(f"torchvision:MNIST@{tmp_path / 'nothing'}")
    with pytest.raises(LayoutError, match="unsupported torchvision dataset"):
        open_any("torchvision:Places365@/x")


def test_imagenet_from_a_local_root(tmp_path: Path) -> None:
    """torchvision's ImageNet reader (meta.bin, train/ and val/ WordNet-id folders) with
    CLIP's class names; the validation set is the test split."""
    import torch

    from app.imagedata.imagenet import imagenet_metadata

    wnids = imagenet_metadata()["wnids"]
    picks = [wnids[0], wnids[1], wnids[999]]
    root = tmp_path / "imagenet"
    for split, n in (("train", 3), ("val", 2)):
        for j, w in enumerate(picks):
            (root / split / w).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (5, 5), (j * 60, i, 0)).save(root / split / w / f"{i}.JPEG")
    wnid_to_classes = {w: ("synonym", "other") for w in picks}
    torch.save((wnid_to_classes, [picks[0]] * 2), root / "meta.bin")
    layout = open_any(f"torchvision:ImageNet@{root}")
    assert layout.class_names == ["tench", "goldfish", "toilet paper"]
    assert len(layout.split("test")) == 6 and len(layout.split("train")) == 9
    assert layout.split("test").labels.tolist() == [0, 0, 1, 1, 2, 2]
    pixel = layout.source.open(layout.split("test").items[4]).getpixel((0, 0))
    assert np.abs(np.subtract(pixel, (120, 0, 0))).max() <= 3  # JPEG
