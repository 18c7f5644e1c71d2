"""WebDataset shards and Hugging Face datasets (save_to_disk and Parquet shards), generated
here with tarfile and the `datasets` library, read in place by `open_dataset`."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.imagedata import open_dataset
from app.imagedata.errors import LayoutError

CLASSES = ["cat", "dog", "fox"]


def _image(i: int) -> Image.Image:
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8))


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    _image(i).save(buf, "PNG")
    return buf.getvalue()


def _shard(path: Path, samples: list[tuple[int, int]], label_ext: str = "cls") -> None:
    """A WebDataset shard: sample i holds KEY.png and KEY.cls (or KEY.json)."""
    with tarfile.open(path, "w") as tf:
        for i, label in samples:
            label_bytes = (
                str(label).encode() if label_ext == "cls" else json.dumps({"label": label}).encode()
            )
            for ext, data in (("png", _png(i)), (label_ext, label_bytes)):
                info = tarfile.TarInfo(f"s{i:05d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def _pixels(layout: object, split: str, index: int) -> np.ndarray:
    s = layout.splits[split]  # type: ignore[attr-defined]
    return np.asarray(layout.source.open(s.items[index]))  # type: ignore[attr-defined]


def test_webdataset_folder_with_splits_and_classnames(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    _shard(tmp_path / "train" / "0.tar", [(i, i % 3) for i in range(6)])
    _shard(tmp_path / "train" / "1.tar", [(i, i % 3) for i in range(6, 9)], label_ext="json")
    _shard(tmp_path / "test" / "0.tar", [(i, i % 3) for i in range(9, 15)])
    (tmp_path / "classnames.txt").write_text("\n".join(CLASSES) + "\n")
    layout = open_dataset(tmp_path, name="wds")
    assert layout.kind == "webdataset" and layout.class_names == CLASSES
    assert len(layout.splits["test"]) == 6
    assert len(layout.splits["train"]) == 9
    test = layout.splits["test"]
    assert test.labels.tolist() == [i % 3 for i in range(9, 15)]
    assert np.array_equal(_pixels(layout, "test", 2), np.asarray(_image(11)))
    again = open_dataset(tmp_path, name="wds")
    assert again.fingerprint == layout.fingerprint


def test_one_webdataset_shard_with_text_labels(tmp_path: Path) -> None:
    _shard(tmp_path / "d.tar", [(i, ["b", "a"][i % 2]) for i in range(8)])
    layout = open_dataset(tmp_path / "d.tar")
    assert layout.kind == "webdataset" and layout.class_names == ["a", "b"]
    assert sum(len(layout.splits[s]) for s in ("train", "test")) == 8


def test_webdataset_sample_without_label_is_named(tmp_path: Path) -> None:
    _shard(tmp_path / "d.tar", [(i, i % 2) for i in range(4)])
    with tarfile.open(tmp_path / "d.tar", "a") as tf:
        info = tarfile.TarInfo("orphan.png")
        data = _png(99)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(LayoutError, match="orphan"):
        open_dataset(tmp_path / "d.tar")


def test_webdataset_is_embedded_in_worker_processes(tmp_path: Path) -> None:
    """The source pickles to DataLoader workers, which read the shards at their offsets."""
    from workers.ml.embed import embed_dataset
    from workers.ml.models import load_model

    _shard(tmp_path / "d.tar", [(i, i % 3) for i in range(12)])
    (tmp_path / "classnames.txt").write_text("\n".join(CLASSES))
    layout = open_dataset(tmp_path / "d.tar")
    tiny = Path(__file__).resolve().parents[3] / "workers" / "ml" / "configs" / "tiny-clip.json"
    model = load_model(str(tiny), device="cpu", seed=0)
    res = embed_dataset(model, layout, split="train", out_dir=tmp_path / "e", num_workers=1)
    assert res.n == len(layout.splits["train"])


def _hf_dataset(n: int = 12) -> object:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}
    )
    rows = {"image": [_image(i) for i in range(n)], "label": [i % 3 for i in range(n)]}
    full = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict({"train": full.select(range(8)), "test": full.select(range(8, n))})


def test_huggingface_save_to_disk(tmp_path: Path) -> None:
    dd = _hf_dataset()
    dd.save_to_disk(str(tmp_path / "hf"))  # type: ignore[attr-defined]
    layout = open_dataset(tmp_path / "hf", name="hf")
    assert layout.kind == "huggingface" and layout.class_names == CLASSES
    assert layout.splits["test"].labels.tolist() == [8 % 3, 9 % 3, 10 % 3, 11 % 3]
    assert np.array_equal(_pixels(layout, "test", 1), np.asarray(_image(9)))
    single = tmp_path / "single"
    dd["test"].save_to_disk(str(single))  # type: ignore[index]
    assert len(open_dataset(single).splits["train"]) + len(open_dataset(single).splits["test"]) == 4


def test_huggingface_parquet_shards(tmp_path: Path) -> None:
    dd = _hf_dataset()
    (tmp_path / "pq" / "data").mkdir(parents=True)
    for split in ("train", "test"):
        dd[split].to_parquet(str(tmp_path / "pq" / "data" / f"{split}-00000-of-00001.parquet"))  # type: ignore[index]
    layout = open_dataset(tmp_path / "pq")
    assert layout.kind == "huggingface" and layout.class_names == CLASSES
    assert len(layout.splits["test"]) == 4
    assert np.array_equal(_pixels(layout, "test", 0), np.asarray(_image(8)))
