"""CSV and Parquet manifests: one row per image with ``path`` or image bytes, ``label`` and an
optional ``split``. Paths are relative to the manifest and may not leave its directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from app.imagedata.decode import decode_image
from app.imagedata.errors import LayoutError
from app.imagedata.layout import Split
from app.imagedata.splits import SPLIT_ALIASES

PATH_COLUMNS = ("path", "image_path", "file", "filename")
BYTES_COLUMNS = ("image", "image_bytes", "bytes")


@dataclass
class ParquetBytesSource:
    """Items are row numbers of a Parquet file's image-bytes column (read lazily, per process)."""

    path: Path
    column: str
    _table: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "column": self.column, "_table": None}

    def _column(self) -> Any:
        if self._table is None:
            import pyarrow.parquet as pq

            self._table = pq.read_table(self.path, columns=[self.column], memory_map=True)
        return self._table.column(self.column)

    def open(self, item: int) -> Image.Image:
        value = self._column()[int(item)].as_py()
        data = value.get("bytes") if isinstance(value, dict) else value
        if not isinstance(data, bytes | bytearray):
            raise LayoutError(f"row {item} of {self.path.name} has no image bytes")
        return decode_image(bytes(data), name=self.describe(item))

    def describe(self, item: int) -> str:
        return f"{self.path.name}#row{item}"


def read_table(path: Path) -> pa.Table:
    """Read a CSV or Parquet manifest as an Arrow table."""
    try:
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            opts = pcsv.ConvertOptions(strings_can_be_null=False)
            return pcsv.read_csv(path, convert_options=opts)
        import pyarrow.parquet as pq

        return pq.read_table(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LayoutError(f"cannot read manifest {path.name}: {exc}") from None


def safe_relative(path: str, base: Path, *, allow_absolute: bool) -> str:
    """`path` normalised relative to `base`; LayoutError if it points outside `base`."""
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute():
        if not allow_absolute:
            raise LayoutError(f"manifest path is absolute, which is not allowed: {path!r}")
        return str(p)
    if ".." in p.parts:
        raise LayoutError(f"manifest path leaves the manifest's directory: {path!r}")
    return p.as_posix()


def manifest_labels(
    column: list[Any], class_names: list[str] | None
) -> tuple[list[str], np.ndarray]:
    """Class names and integer labels from a label column of names or integers."""
    if all(isinstance(v, int) for v in column):
        labels = np.asarray(column, dtype=np.int64)
        k = int(labels.max(initial=-1)) + 1
        names = class_names or [str(i) for i in range(k)]
        if labels.min(initial=0) < 0 or k > len(names):
            raise LayoutError(f"integer labels must lie in 0..{len(names) - 1}")
        return list(names), labels
    values = [str(v) for v in column]
    names = class_names or sorted(set(values))
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise LayoutError(f"labels not among the class names: {unknown[:10]}")
    return list(names), np.asarray([index[v] for v in values], dtype=np.int64)


def read_manifest(
    path: Path, *, class_names: list[str] | None, allow_absolute: bool
) -> tuple[list[str], dict[str, Split], Any, Path]:
    """Parse a manifest into (class names, splits, image source, base directory)."""
    from app.imagedata.layout import FileSource

    table = read_table(path)
    cols = set(table.column_names)
    if "label" not in cols:
        raise LayoutError(f"manifest {path.name} has no 'label' column (columns: {sorted(cols)})")
    names, labels = manifest_labels(table.column("label").to_pylist(), class_names)
    path_col = next((c for c in PATH_COLUMNS if c in cols), None)
    bytes_col = next((c for c in BYTES_COLUMNS if c in cols), None)
    if bytes_col is not None and path.suffix.lower() != ".csv":
        items: list[Any] = list(range(table.num_rows))
        source: Any = ParquetBytesSource(path, bytes_col)
    elif path_col is not None:
        raw = [str(v) for v in table.column(path_col).to_pylist()]
        items = [safe_relative(v, path.parent, allow_absolute=allow_absolute) for v in raw]
        source = FileSource(path.parent)
    else:
        raise LayoutError(f"manifest {path.name} needs a 'path' column or an 'image' bytes column")
    split_col = table.column("split").to_pylist() if "split" in cols else ["all"] * len(items)
    return names, _group_splits(items, labels, split_col), source, path.parent


def _group_splits(items: list[Any], labels: np.ndarray, split_col: list[Any]) -> dict[str, Split]:
    keys = [SPLIT_ALIASES.get(str(s).lower(), str(s).lower()) for s in split_col]
    unknown = sorted(set(keys) - {"train", "test", "val", "all"})
    if unknown:
        raise LayoutError(f"unknown split names in manifest: {unknown} (use train/test/val)")
    if "all" in keys and len(set(keys)) > 1:
        raise LayoutError("manifest rows without a split mixed with rows that have one")
    splits = {}
    for name in sorted(set(keys)):
        idx = np.asarray([i for i, k in enumerate(keys) if k == name], dtype=np.int64)
        splits[name] = Split(name, [items[i] for i in idx], labels[idx])
    return splits
