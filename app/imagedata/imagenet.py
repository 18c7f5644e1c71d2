"""ImageNet's classes and the out-of-distribution sets mapped onto them.

The 1000 WordNet ids in ImageNet's class order (sorted), CLIP's readable class names
(Radford et al., 2021) and the 200-class subsets of ImageNet-R (Hendrycks et al., 2021a) and
ImageNet-A (Hendrycks et al., 2021b), as CLIP_benchmark lists them (``data/imagenet.json``).
CLIP gives one name to two classes, twice; one class of each pair is named by its WordNet
lemma instead (n04008634 "projectile", n04355933 "sunglass") so that class names are unique.
Image folders whose class folders are WordNet ids (ImageNet, ImageNet-Sketch, -R, -A) or class
indices ``0``..``999`` (ImageNet-V2) get ImageNet's class names; -R and -A are checked to lie
in their 200-class subsets."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from app.imagedata.errors import LayoutError

_WNID = re.compile(r"^n\d{8}$")
#: Canonical dataset names (see ``prompts.canonical_name``) with a 200-class subset.
SUBSETS = {"imagenetr": "imagenet_r_wnids", "imageneta": "imagenet_a_wnids"}
#: Canonical names of the ImageNet-V2 folders, whose class folders are indices.
V2_NAMES = ("imagenetv2", "imagenetv2matchedfrequency", "imagenetv2threshold07",
            "imagenetv2topimages")  # fmt: skip


@cache
def imagenet_metadata() -> dict[str, Any]:
    """``wnids`` (1000, class order), ``class_names`` (CLIP's) and the R/A subsets."""
    path = Path(__file__).with_name("data") / "imagenet.json"
    return json.loads(path.read_text(encoding="utf-8"))


def class_name_of_wnid() -> dict[str, str]:
    """WordNet id -> CLIP's readable ImageNet class name."""
    meta = imagenet_metadata()
    return dict(zip(meta["wnids"], meta["class_names"], strict=True))


def imagenet_folder_names(dataset: str | None, folders: list[str]) -> list[str] | None:
    """ImageNet class names for class folders named by WordNet id or (ImageNet-V2) by class
    index; None when the folders are neither. LayoutError for an -R/-A folder outside the
    dataset's 200-class subset."""
    if folders and all(_WNID.match(f) for f in folders):
        names = class_name_of_wnid()
        unknown = [f for f in folders if f not in names]
        if unknown:
            raise LayoutError(f"class folders that are not ImageNet WordNet ids: {unknown[:10]}")
        subset = SUBSETS.get(dataset or "")
        if subset:
            allowed = set(imagenet_metadata()[subset])
            outside = [f for f in folders if f not in allowed]
            if outside:
                raise LayoutError(
                    f"class folders outside the 200 classes of {dataset}: {outside[:10]}"
                )
        return [names[f] for f in folders]
    if dataset in V2_NAMES and folders and all(f.isdigit() for f in folders):
        meta = imagenet_metadata()["class_names"]
        if any(int(f) >= len(meta) for f in folders):
            raise LayoutError("ImageNet-V2 class folders must be the indices 0..999")
        return [meta[int(f)] for f in folders]
    return None
