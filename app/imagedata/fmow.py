"""fMoW (Functional Map of the World) in the on-disk layout of WILDS (Koh et al., 2021).

A WILDS root holds ``fmow_v1.1/`` with ``rgb_metadata.csv`` (one row per image: ``split``,
``category``, ``timestamp``, ...), ``country_code_mapping.csv`` and ``images/rgb_img_<row>.png``
(``<row>`` is the 0-based row of the metadata file). Read with the standard library, in place,
never downloaded; the ``wilds`` package is not needed.

WILDS' official split scheme (``time_after_2016``): images from 2016 on are out-of-distribution
test, 2013-2015 out-of-distribution validation, earlier ones in-distribution. The service's
splits are WILDS' ``train`` (train), ``id_val`` (val: the in-distribution validation set) and
``test`` (test: the out-of-distribution test set); ``id_test``, the OOD ``val`` and the unlabeled
``seq`` rows are not used.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.imagedata.errors import LayoutError
from app.imagedata.layout import Split

FOLDER = "fmow_v1.1"
METADATA = "rgb_metadata.csv"
COUNTRIES = "country_code_mapping.csv"
#: The year from which images are WILDS' OOD test set; three years before it, OOD validation.
TEST_YEAR = 2016

#: fMoW's 62 categories in WILDS' label order (``y`` is the index in this list).
CATEGORIES: tuple[str, ...] = (
    "airport", "airport_hangar", "airport_terminal", "amusement_park", "aquaculture",
    "archaeological_site", "barn", "border_checkpoint", "burial_site", "car_dealership",
    "construction_site", "crop_field", "dam", "debris_or_rubble", "educational_institution",
    "electric_substation", "factory_or_powerplant", "fire_station", "flooded_road", "fountain",
    "gas_station", "golf_course", "ground_transportation_station", "helipad", "hospital",
    "impoverished_settlement", "interchange", "lake_or_pond", "lighthouse", "military_facility",
    "multi-unit_residential", "nuclear_powerplant", "office_building", "oil_or_gas_facility",
    "park", "parking_lot_or_garage", "place_of_worship", "police_station", "port", "prison",
    "race_track", "railway_bridge", "recreational_facility", "road_bridge", "runway", "shipyard",
    "shopping_mall", "single-unit_residential", "smokestack", "solar_farm", "space_facility",
    "stadium", "storage_tank", "surface_mine", "swimming_pool", "toll_booth", "tower",
    "tunnel_opening", "waste_disposal", "water_treatment_facility", "wind_farm", "zipper",
)  # fmt: skip


def fmow_root(path: Path) -> Path | None:
    """The ``fmow_v1.1`` folder of a WILDS root (or the folder itself), None if neither."""
    for candidate in (path / FOLDER, path):
        if candidate.name == FOLDER and candidate.is_dir():
            return candidate
    return None


def _wilds_split(row: dict[str, str], line: int) -> str | None:
    """WILDS' split of one metadata row under the official scheme (None: not labelled)."""
    split = row["split"]
    if split not in ("train", "val", "test"):
        return None
    try:
        stamp = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
    except ValueError:
        raise LayoutError(
            f"{FOLDER}/{METADATA} line {line}: timestamp {row['timestamp']!r} is not ISO 8601"
        ) from None
    year = (stamp if stamp.tzinfo is None else stamp.astimezone(UTC)).year
    if year >= TEST_YEAR:
        return "test" if split == "test" else ("ood_val" if split == "val" else None)
    if year >= TEST_YEAR - 3:
        return "ood_val" if split == "val" else None
    return {"train": "train", "val": "id_val", "test": "id_test"}[split]


#: WILDS split -> the service's split.
SERVICE_SPLITS = {"train": "train", "id_val": "val", "test": "test"}


def read_fmow(root: Path) -> tuple[list[str], dict[str, Split]]:
    """fMoW's class names and its train/val/test splits (items: ``images/rgb_img_<row>.png``).

    The class names are the categories that occur (all 62 in the full dataset) in WILDS'
    order, with spaces for underscores (``airport hangar``, as prompts read them); a subset
    of fMoW thus has no empty classes. `root` is the ``fmow_v1.1`` folder. LayoutError names
    a missing metadata file, a missing column, an unknown category or a bad timestamp (by
    line of ``rgb_metadata.csv``).
    """
    missing = [f"{FOLDER}/{f}" for f in (METADATA, COUNTRIES) if not (root / f).is_file()]
    if not (root / "images").is_dir():
        missing.append(f"{FOLDER}/images/")
    if missing:
        raise LayoutError(
            f"not a WILDS fMoW root: missing {', '.join(missing)} (the layout WILDS' "
            "get_dataset('fmow', download=True) creates)"
        )
    index = {c: i for i, c in enumerate(CATEGORIES)}
    items: dict[str, list[str]] = {s: [] for s in SERVICE_SPLITS.values()}
    labels: dict[str, list[int]] = {s: [] for s in SERVICE_SPLITS.values()}
    with (root / METADATA).open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        absent = {"split", "category", "timestamp"} - set(reader.fieldnames or [])
        if absent:
            raise LayoutError(f"{FOLDER}/{METADATA} lacks the columns {sorted(absent)}")
        for row_no, row in enumerate(reader):
            split = SERVICE_SPLITS.get(_wilds_split(row, row_no + 2) or "")
            if split is None:
                continue
            if row["category"] not in index:
                raise LayoutError(
                    f"{FOLDER}/{METADATA} line {row_no + 2}: unknown fMoW category "
                    f"{row['category']!r}"
                )
            items[split].append(f"images/rgb_img_{row_no}.png")
            labels[split].append(index[row["category"]])
    present = sorted({y for ys in labels.values() for y in ys})
    relabel = np.full(len(CATEGORIES), -1, dtype=np.int64)
    relabel[present] = np.arange(len(present))
    splits = {
        s: Split(s, items[s], relabel[np.asarray(labels[s], dtype=np.int64)])
        for s in items
        if items[s]
    }
    return [CATEGORIES[y].replace("_", " ") for y in present], splits
