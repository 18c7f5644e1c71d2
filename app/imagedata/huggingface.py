"""Hugging Face datasets on disk: ``Dataset.save_to_disk`` folders (Arrow files) and Parquet
shards (``data/train-00000-of-00002.parquet``, what the Hub serves), with image bytes.

Read with pyarrow, which is what the ``datasets`` library stores them with, so the API can
validate them without that library: the image column is the ``Image`` feature (a struct of
``bytes`` and ``path``), the label column the ``ClassLabel`` feature, whose ``names`` are the
class names (``dataset_info.json``, or the ``huggingface`` key of the Parquet schema's
metadata). Splits are a ``DatasetDict``'s folders, or the Parquet files' name prefixes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from app.imagedata.decode import decode_image
from app.imagedata.errors import LayoutError
from app.imagedata.layout import Split
from app.imagedata.manifest import BYTES_COLUMNS, hf_label_names, manifest_labels
from app.imagedata.splits import SPLIT_ALIASES

LABEL_COLUMNS = ("label", "labels", "fine_label", "cls", "target")


@dataclass
class ArrowImageSource:
    """Items are (file number, row); the image column is read lazily per process."""

    files: tuple[Path, ...]
    column: str
    _tables: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"files": self.files, "column": self.column, "_tables": {}}

    def _column(self, number: int) -> Any:
        if number not in self._tables:
            self._tables[number] = read_arrow(self.files[number], [self.column])
        return self._tables[number].column(self.column)

    def open(self, item: tuple[int, int]) -> Image.Image:
        value = self._column(int(item[0]))[int(item[1])].as_py()
        data = value.get("bytes") if isinstance(value, dict) else value
        if not isinstance(data, bytes | bytearray):
            raise LayoutError(f"{self.describe(item)} has no image bytes")
        return decode_image(bytes(data), name=self.describe(item))

    def files_used(self) -> tuple[Path, ...]:
        """The data files read (for the dataset's fingerprint)."""
        return self.files

    def describe(self, item: tuple[int, int]) -> str:
        return f"{self.files[int(item[0])].name}#row{int(item[1])}"


def read_arrow(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A ``save_to_disk`` Arrow file (IPC stream, memory-mapped) or a Parquet file."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=columns, memory_map=True)
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise LayoutError(f"cannot read {path.name}: {exc}") from None
    return table.select(columns) if columns else table


def is_hf_dir(path: Path) -> bool:
    """True for a ``save_to_disk`` folder or a folder of Parquet shards."""
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        return True
    return bool(_parquet_files(path)) and not any(
        p.suffix.lower() in (".png", ".jpg", ".jpeg") for p in path.rglob("*")
    )


def _parquet_files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.parquet"))


def _split_of(file: Path, root: Path) -> str:
    """``train-00000-of-00002.parquet`` or ``train/x.parquet`` -> train (else "all")."""
    candidates = [file.name.split("-")[0].split(".")[0], *file.relative_to(root).parts[:-1]]
    for c in candidates:
        if c.lower() in SPLIT_ALIASES:
            return SPLIT_ALIASES[c.lower()]
    return "all"


def _saved_files(path: Path) -> dict[str, tuple[list[Path], dict[str, Any]]]:
    """Split -> (Arrow files, features) of a ``save_to_disk`` Dataset or DatasetDict."""
    if (path / "dataset_dict.json").is_file():
        doc = json.loads((path / "dataset_dict.json").read_text())
        out = {}
        for split in doc.get("splits", []):
            files, features = _saved_files(path / split)["all"]
            out[SPLIT_ALIASES.get(split.lower(), split.lower())] = (files, features)
        return out
    info = json.loads((path / "dataset_info.json").read_text())
    state = json.loads((path / "state.json").read_text()) if (path / "state.json").is_file() else {}
    names = [f["filename"] for f in state.get("_data_files", [])]
    files = [path / n for n in names] or sorted(path.glob("*.arrow"))
    return {"all": (files, info.get("features") or {})}


def _columns(schema: pa.Schema, features: dict[str, Any]) -> tuple[str, str]:
    """(image column, label column) from the features, or by the usual names."""
    image = next((k for k, f in features.items() if isinstance(f, dict)
                  and f.get("_type") == "Image"), None)  # fmt: skip
    label = next((k for k, f in features.items() if isinstance(f, dict)
                  and f.get("_type") == "ClassLabel"), None)  # fmt: skip
    names = schema.names
    image = image or next((n for n in names if n.lower() in (*BYTES_COLUMNS, "img")), None)
    label = label or next((n for n in names if n.lower() in LABEL_COLUMNS), None)
    if image is None or label is None:
        raise LayoutError(
            f"no image and label columns found among {names} (expected an Image feature or "
            f"a column named image/img, and a ClassLabel feature or one named {LABEL_COLUMNS})"
        )
    return image, label


def read_huggingface(
    path: Path, class_names: list[str] | None
) -> tuple[list[str], dict[str, Split], ArrowImageSource]:
    """Class names, splits and the image source of a Hugging Face dataset folder."""
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        groups = _saved_files(path)
    else:
        groups = {}
        for f in _parquet_files(path):
            groups.setdefault(_split_of(f, path), ([], {}))[0].append(f)
    files = [f for fs, _ in groups.values() for f in fs]
    if not files:
        raise LayoutError("no Arrow or Parquet files found in the dataset folder")
    schema = read_arrow(files[0]).schema
    features = next(iter(groups.values()))[1] or _schema_features(schema)
    image_col, label_col = _columns(schema, features)
    declared = (features.get(label_col) or {}).get("names") if features else None
    names_hint = class_names or declared or hf_label_names(schema)
    items: dict[str, list[tuple[int, int]]] = {}
    raw: list[Any] = []
    for split, (fs, _) in groups.items():
        for f in fs:
            labels = read_arrow(f, [label_col]).column(label_col).to_pylist()
            items.setdefault(split, []).extend((files.index(f), r) for r in range(len(labels)))
            raw.extend(labels)
    names, y = manifest_labels(raw, list(names_hint) if names_hint else None)
    splits, start = {}, 0
    for split, its in items.items():
        splits[split] = Split(split, its, y[start : start + len(its)].astype(np.int64))
        start += len(its)
    return names, splits, ArrowImageSource(tuple(files), image_col)


def _schema_features(schema: pa.Schema) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    try:
        return json.loads(raw).get("info", {}).get("features", {}) or {}
    except (ValueError, AttributeError):
        return {}
