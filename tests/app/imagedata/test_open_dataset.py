"""open_dataset on every layout: folders, archives, manifests; class checks; fingerprints."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from app.imagedata import DatasetLayout, LayoutError, default_templates, open_dataset

from .conftest import MakeFolder, write_png


def _sizes(layout: DatasetLayout) -> dict[str, int]:
    return {k: len(v) for k, v in layout.splits.items()}


def test_folder_with_split_dirs(make_folder: MakeFolder) -> None:
    root = make_folder({"cat": 3, "dog_face": 2}, splits=("train", "test"))
    layout = open_dataset(root, seed=0)
    assert layout.kind == "folder"
    assert layout.class_names == ["cat", "dog face"]
    assert len(layout.split("test")) == 5 and len(layout.split("train")) == 5
    assert layout.split("test").labels.tolist() == [0, 0, 0, 1, 1]
    assert layout.split("test").items[0] == "test/cat/000.png"
    assert len(layout.split("val")) == 0 + round(0.1 * 5)
    val, rest = layout.split("val"), layout.split("train_no_val")
    assert sorted(val.items + rest.items) == sorted(layout.split("train").items)
    assert layout.source.open(layout.split("test").items[0]).mode == "RGB"


def test_folder_without_splits_gets_seeded_stratified_test(make_folder: MakeFolder) -> None:
    root = make_folder({"a": 10, "b": 20})
    one, two = open_dataset(root, seed=3), open_dataset(root, seed=3)
    other = open_dataset(root, seed=4)
    test = one.split("test")
    assert test.class_counts(2) == [2, 4]  # 20% of each class
    assert test.items == two.split("test").items
    assert test.items != other.split("test").items
    assert not set(test.items) & set(one.split("train").items)
    assert one.derived["test"].startswith("stratified")
    assert one.fingerprint == two.fingerprint != other.fingerprint


def test_wrapping_directory_and_resisc45_name(make_folder: MakeFolder, tmp_path: Path) -> None:
    root = make_folder(
        {"baseball_diamond": 2, "airplane": 2}, root=tmp_path / "up" / "NWPU-RESISC45"
    )
    layout = open_dataset(tmp_path / "up", name="NWPU-RESISC45")
    assert layout.class_names == ["airplane", "baseball diamond"]
    assert Path(layout.location) == root
    assert default_templates(layout.name) == ["satellite imagery of {c}."]


def test_eurosat_folders_get_clip_names(make_folder: MakeFolder) -> None:
    root = make_folder({"AnnualCrop": 2, "SeaLake": 2})
    layout = open_dataset(root, name="EuroSAT")
    assert layout.class_names == ["annual crop land", "lake or sea"]
    assert default_templates("EuroSAT") == ["a centered satellite photo of a {c}."]


def test_classnames_json_and_given_names(make_folder: MakeFolder) -> None:
    root = make_folder({"n01": 2, "n02": 2})
    (root / "classnames.json").write_text(json.dumps({"n01": "goldfish", "n02": "shark"}))
    assert open_dataset(root).class_names == ["goldfish", "shark"]
    assert open_dataset(root, class_names=["x", "y"]).class_names == ["x", "y"]


def test_empty_class_folder_rejected(make_folder: MakeFolder) -> None:
    root = make_folder({"a": 2, "b": 2})
    (root / "empty").mkdir()
    with pytest.raises(LayoutError, match=r"class folders with no images: \['empty'\]"):
        open_dataset(root)


def test_single_class_rejected(make_folder: MakeFolder) -> None:
    root = make_folder({"only": 3}, splits=("train", "test"))
    with pytest.raises(LayoutError, match="at least 2 classes"):
        open_dataset(root)


def test_no_classes_rejected(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(LayoutError, match="no class directories"):
        open_dataset(tmp_path / "d")


@pytest.mark.parametrize("fmt", ["zip", "tar", "gztar"])
def test_archives_match_the_folder(make_folder: MakeFolder, tmp_path: Path, fmt: str) -> None:
    root = make_folder({"a": 3, "b": 3}, splits=("train", "test"))
    arc = Path(
        shutil.make_archive(str(tmp_path / "ds"), fmt, root_dir=root.parent, base_dir=root.name)
    )
    layout = open_dataset(arc, extract_dir=tmp_path / f"x-{fmt}")
    folder = open_dataset(root)
    assert layout.kind == "archive"
    assert layout.class_names == ["a", "b"]
    assert _sizes(layout) == _sizes(folder)
    assert layout.fingerprint == folder.fingerprint  # same content, same fingerprint
    again = open_dataset(arc, extract_dir=tmp_path / f"x-{fmt}")  # reuses the extraction
    assert again.fingerprint == layout.fingerprint


def test_fingerprint_changes_with_content(make_folder: MakeFolder) -> None:
    root = make_folder({"a": 2, "b": 2}, splits=("train", "test"))
    before = open_dataset(root).fingerprint
    write_png(root / "test" / "a" / "000.png", seed=999)
    assert open_dataset(root).fingerprint != before
    stat_fp = open_dataset(root, fingerprint_mode="stat").fingerprint
    assert stat_fp == open_dataset(root, fingerprint_mode="stat").fingerprint


def test_csv_manifest_with_paths(make_folder: MakeFolder, tmp_path: Path) -> None:
    root = make_folder({"a": 2, "b": 2}, root=tmp_path / "imgs")
    lines = [
        "path,label,split",
        "imgs/a/000.png,a,train",
        "imgs/a/001.png,a,test",
        "imgs/b/000.png,b,train",
        "imgs/b/001.png,b,test",
    ]
    manifest = root.parent / "m.csv"
    manifest.write_text("\n".join(lines))
    layout = open_dataset(manifest)
    assert layout.kind == "csv" and layout.class_names == ["a", "b"]
    assert layout.split("test").items == ["imgs/a/001.png", "imgs/b/001.png"]
    assert layout.source.open("imgs/a/001.png").size == (8, 8)


@pytest.mark.parametrize("path", ["../outside.png", "/etc/passwd"])
def test_manifest_paths_may_not_escape(tmp_path: Path, path: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\n{path},a\nx.png,b\n")
    with pytest.raises(LayoutError, match=r"absolute|leaves"):
        open_dataset(manifest)


def _png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(
        buf, "PNG"
    )
    return buf.getvalue()


def test_parquet_manifest_with_image_bytes(tmp_path: Path) -> None:
    images = [{"bytes": _png_bytes(i), "path": None} for i in range(6)]  # Hugging Face style
    table = pa.table(
        {"image": images, "label": [0, 1, 2, 0, 1, 2], "split": ["train"] * 3 + ["test"] * 3}
    )
    pq.write_table(table, tmp_path / "d.parquet")
    layout = open_dataset(tmp_path / "d.parquet", class_names=["x", "y", "z"])
    assert layout.kind == "parquet" and layout.class_names == ["x", "y", "z"]
    test = layout.split("test")
    assert test.items == [3, 4, 5] and test.labels.tolist() == [0, 1, 2]
    img = layout.source.open(4)
    assert img.mode == "RGB" and img.size == (6, 6)
    import pickle

    assert pickle.loads(pickle.dumps(layout.source)).open(4).tobytes() == img.tobytes()


def test_parquet_plain_binary_column_and_bad_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "image": [_png_bytes(0), b"garbage", _png_bytes(2), _png_bytes(3)],
            "label": ["cat", "dog", "cat", "dog"],
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    layout = open_dataset(tmp_path / "d.parquet")
    assert layout.class_names == ["cat", "dog"]
    from app.imagedata import DecodeError

    with pytest.raises(DecodeError, match=r"d\.parquet#row1"):
        layout.source.open(1)


def test_manifest_errors_are_clear(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("path,klass\nx.png,a\n")
    with pytest.raises(LayoutError, match="no 'label' column"):
        open_dataset(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("path,label,split\nx.png,a,train\ny.png,b,holdout\n")
    with pytest.raises(LayoutError, match="unknown split names"):
        open_dataset(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("path,label\nx.png,a\ny.png,a\n")
    with pytest.raises(LayoutError, match="at least 2 classes"):
        open_dataset(tmp_path / "c.csv")
    with pytest.raises(LayoutError, match="classes with no images"):
        open_dataset(tmp_path / "c.csv", class_names=["a", "b"])
    (tmp_path / "d.csv").write_text("path,label\nx.png,a\ny.png,b\n")
    with pytest.raises(LayoutError, match=r"missing: .*x\.png"):
        open_dataset(tmp_path / "d.csv")


def test_summary_is_json_ready(make_folder: MakeFolder) -> None:
    layout = open_dataset(make_folder({"a": 5, "b": 5}))
    summary = json.loads(json.dumps(layout.summary()))
    assert summary["splits"]["test"]["class_counts"] == [1, 1]
    assert set(summary["splits"]) == {"train", "test", "val", "train_no_val"}


def test_tar_with_pax_headers_opens(tmp_path: Path) -> None:
    arc = tmp_path / "d.tar"
    with tarfile.open(arc, "w", format=tarfile.PAX_FORMAT) as tf:
        for i, cls in enumerate(["a", "a", "b", "b"]):
            data = _png_bytes(i)
            info = tarfile.TarInfo(f"{cls}/{i}.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    assert open_dataset(arc).class_names == ["a", "b"]


def test_a_lone_split_directory_is_a_split_not_a_wrapper(make_folder: MakeFolder) -> None:
    root = make_folder({"a": 5, "b": 5}, splits=("test",))
    layout = open_dataset(root)
    assert len(layout.split("test")) == 10 and "train" not in layout.splits
