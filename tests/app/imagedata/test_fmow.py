"""fMoW in WILDS' on-disk layout: class names, WILDS' official (time_after_2016) splits mapped
to the service's train/val/test, and clear errors for roots that lack its files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.imagedata import open_dataset
from app.imagedata.errors import LayoutError
from app.imagedata.fmow import CATEGORIES

# (WILDS split column, category, timestamp) -> the service split it must land in (None: unused).
ROWS: list[tuple[str, str, str, str | None]] = [
    ("train", "zipper", "2010-03-01T10:00:00Z", "train"),
    ("train", "airport", "2012-12-31T23:59:59Z", "train"),
    ("train", "dam", "2011-06-01T00:00:00.5Z", "train"),
    ("train", "airport_hangar", "2011-02-01T00:00:00+05:00", "train"),
    ("train", "airport", "2014-01-01T00:00:00Z", None),  # train-labelled but OOD-val years
    ("val", "dam", "2009-05-05T12:00:00Z", "val"),  # id_val
    ("val", "zipper", "2012-01-01T00:00:00Z", "val"),  # id_val
    ("val", "airport", "2014-07-07T07:07:07Z", None),  # OOD val: not used
    ("test", "zipper", "2016-01-01T00:00:00Z", "test"),  # OOD test
    ("test", "airport", "2017-02-02T02:02:02Z", "test"),
    ("test", "dam", "2016-08-08T00:00:00Z", "test"),
    ("test", "dam", "2010-01-01T00:00:00Z", None),  # id_test: not used
    ("seq", "dam", "2011-01-01T00:00:00Z", None),  # unlabelled sequence rows
]


def _fmow_root(base: Path, rows: list[tuple[str, str, str, str | None]] = ROWS) -> Path:
    data = base / "fmow_v1.1"
    (data / "images").mkdir(parents=True)
    with (data / "rgb_metadata.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["split", "img_filename", "category", "country_code", "timestamp"])
        for i, (split, category, stamp, _) in enumerate(rows):
            w.writerow([split, f"{category}_{i}_rgb.jpg", category, "USA", stamp])
    (data / "country_code_mapping.csv").write_text("alpha-3,region\nUSA,Americas\n")
    for i in range(len(rows)):
        Image.new("RGB", (6, 6), (i, 2 * i, 3)).save(data / "images" / f"rgb_img_{i}.png")
    return base


def test_categories_are_wilds_62_in_order() -> None:
    assert len(CATEGORIES) == len(set(CATEGORIES)) == 62
    assert (CATEGORIES[0], CATEGORIES[30], CATEGORIES[61]) == (
        "airport",
        "multi-unit_residential",
        "zipper",
    )


@pytest.mark.parametrize("sub", ["", "fmow_v1.1"])
def test_official_splits_names_and_labels(tmp_path: Path, sub: str) -> None:
    layout = open_dataset(_fmow_root(tmp_path / "wilds") / sub, name="fmow")
    assert layout.kind == "fmow"
    assert layout.class_names == ["airport", "airport hangar", "dam", "zipper"]  # WILDS' order
    for split in ("train", "val", "test"):
        want = [
            (f"images/rgb_img_{i}.png", layout.class_names.index(r[1].replace("_", " ")))
            for i, r in enumerate(ROWS)
            if r[3] == split
        ]
        got = layout.split(split)
        assert list(got.items) == [w[0] for w in want], split
        assert got.labels.tolist() == [w[1] for w in want], split
    assert len(layout.split("train_no_val")) == 4
    assert "val" not in layout.derived and "test" not in layout.derived
    item = layout.split("test").items[1]
    assert np.asarray(layout.source.open(item)).shape == (6, 6, 3)


def test_root_without_the_files_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "wilds" / "fmow_v1.1" / "images").mkdir(parents=True)
    with pytest.raises(LayoutError) as err:
        open_dataset(tmp_path / "wilds")
    message = str(err.value)
    assert "fmow_v1.1/rgb_metadata.csv" in message
    assert "fmow_v1.1/country_code_mapping.csv" in message
    assert str(tmp_path) not in message


def test_missing_image_and_bad_rows_are_named(tmp_path: Path) -> None:
    root = _fmow_root(tmp_path / "a")
    (root / "fmow_v1.1" / "images" / "rgb_img_9.png").unlink()
    with pytest.raises(LayoutError, match=r"missing: images/rgb_img_9\.png") as err:
        open_dataset(root)
    assert str(tmp_path) not in str(err.value)
    bad = [*ROWS[:2], ("train", "castle", "2010-01-01T00:00:00Z", "train")]
    with pytest.raises(LayoutError, match="line 4: unknown fMoW category 'castle'"):
        open_dataset(_fmow_root(tmp_path / "b", bad))
    bad = [*ROWS[:2], ("test", "dam", "last year", "test")]
    with pytest.raises(LayoutError, match="line 4: timestamp 'last year' is not ISO 8601"):
        open_dataset(_fmow_root(tmp_path / "c", bad))
