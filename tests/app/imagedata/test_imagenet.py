"""ImageNet's class names on image folders: WordNet-id folders (ImageNet, -Sketch, -R, -A),
index folders (ImageNet-V2), the 200-class subsets of -R and -A."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from app.imagedata import open_dataset
from app.imagedata.errors import LayoutError
from app.imagedata.imagenet import imagenet_metadata

META = imagenet_metadata()


def _folders(root: Path, folders: list[str], per_class: int = 2) -> Path:
    for j, f in enumerate(folders):
        (root / f).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (4, 4), (j, i, 0)).save(root / f / f"{i}.JPEG")
    return root


def test_the_public_lists() -> None:
    wnids, names = META["wnids"], META["class_names"]
    assert len(wnids) == len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert len(set(names)) == 1000
    assert (wnids[0], names[0]) == ("n01440764", "tench")
    assert (wnids[999], names[999]) == ("n15075141", "toilet paper")
    for key in ("imagenet_r_wnids", "imagenet_a_wnids"):
        assert len(META[key]) == 200 and set(META[key]) <= set(wnids)
    assert "n01443537" in META["imagenet_r_wnids"]  # goldfish
    assert "n01443537" not in META["imagenet_a_wnids"]


def test_wnid_folders_get_imagenet_names_in_imagenet_order(tmp_path: Path) -> None:
    picks = [META["wnids"][i] for i in (999, 1, 0)]
    layout = open_dataset(_folders(tmp_path / "sketch", picks), name="imagenet-sketch")
    assert layout.class_names == ["tench", "goldfish", "toilet paper"]


def test_imagenet_r_is_its_200_class_subset(tmp_path: Path) -> None:
    r = META["imagenet_r_wnids"]
    layout = open_dataset(_folders(tmp_path / "r", [r[5], r[0]]), name="imagenet-r")
    names = dict(zip(META["wnids"], META["class_names"], strict=True))
    assert layout.class_names == [names[r[0]], names[r[5]]]
    outside = next(w for w in META["wnids"] if w not in set(r))
    with pytest.raises(LayoutError, match=outside):
        open_dataset(_folders(tmp_path / "r2", [r[0], outside]), name="ImageNet-R")
    a = META["imagenet_a_wnids"]
    layout = open_dataset(_folders(tmp_path / "a", [a[0], a[199]]), name="imagenet-a")
    assert layout.class_names == [names[a[0]], names[a[199]]]
    with pytest.raises(LayoutError, match=r[0]):  # goldfish is in -R, not in -A
        open_dataset(_folders(tmp_path / "a2", [a[0], r[0]]), name="imagenet-a")


def test_imagenet_v2_index_folders(tmp_path: Path) -> None:
    layout = open_dataset(_folders(tmp_path / "v2", ["10", "2", "999"]), name="imagenetv2")
    assert layout.class_names == [META["class_names"][i] for i in (2, 10, 999)]
    plain = open_dataset(_folders(tmp_path / "digits", ["10", "2", "3"]), name="counts")
    assert plain.class_names == ["2", "3", "10"]
