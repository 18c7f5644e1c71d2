"""CSV and Parquet manifests: one row per image with ``path`` or image bytes, ``label`` and an
optional ``split``. Paths are relative to the manifest and may not leave its directory."""

from __future__ import annotations

import codecs
import csv
import io
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


@dataclass
class ManifestTable:
    """A manifest's columns (lower-case names) and, per row, how a message should name it."""

    columns: dict[str, list[Any]]
    row_names: list[str]
    #: Class names a Hugging Face Parquet file declares for its label (ClassLabel feature).
    label_names: list[str] | None = None

    @property
    def num_rows(self) -> int:
        return len(self.row_names)


def read_table(path: Path) -> ManifestTable:
    """Read a CSV or Parquet manifest; LayoutError naming what is wrong."""
    if path.suffix.lower() == ".csv":
        return read_csv_manifest(path)
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LayoutError(f"cannot read manifest {path.name}: not a Parquet file ({exc})") from None
    columns = {
        c.lower(): table.column(c).to_pylist()
        for c in table.column_names
        if c.lower() not in BYTES_COLUMNS
    }
    for c in table.column_names:
        if c.lower() in BYTES_COLUMNS:
            columns[c.lower()] = []  # read lazily by ParquetBytesSource
    rows = [f"row {i + 1}" for i in range(table.num_rows)]
    return ManifestTable(columns, rows, hf_label_names(table.schema))


def hf_label_names(schema: pa.Schema) -> list[str] | None:
    """The names of a ``label`` ClassLabel feature in a Hugging Face Parquet file's metadata."""
    import json

    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        features = json.loads(raw).get("info", {}).get("features", {})
    except (ValueError, AttributeError):
        return None
    for key in ("label", "labels"):
        feature = features.get(key) if isinstance(features, dict) else None
        if isinstance(feature, dict) and isinstance(feature.get("names"), list):
            return [str(n) for n in feature["names"]]
    return None


_DELIMITERS = (",", ";", "\t", "|")


def _decode_text(data: bytes, name: str) -> str:
    """CSV bytes as text: a BOM's encoding, UTF-8, or the encoding charset-normalizer finds."""
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            return data.decode(enc)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LayoutError(f"manifest {name} is not text in an encoding that could be recognised")
    return str(best)


def _delimiter(header: str) -> str:
    """The delimiter under which the header line holds a ``label`` column (``,`` otherwise)."""
    for d in _DELIMITERS:
        fields = next(csv.reader([header], delimiter=d), [])
        if "label" in (f.strip().lower() for f in fields):
            return d
    return ","


def read_csv_manifest(path: Path) -> ManifestTable:
    """A CSV manifest read with the csv module: any BOM and line ending, quoted fields (with
    commas or line breaks), ``,``/``;``/tab/``|`` delimiters. Every value stays text."""
    text = _decode_text(path.read_bytes(), path.name)
    lines = iter(text.splitlines())
    delimiter = _delimiter(next(lines, ""))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        rows: list[list[str]] = []
        where: list[str] = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # blank line
            rows.append(fields)
            where.append(f"row {len(rows)} (line {reader.line_num})")
    except csv.Error as exc:
        raise LayoutError(
            f"manifest {path.name} is not valid CSV at line {reader.line_num}: {exc}"
        ) from None
    _check_widths(rows, where, len(header), path.name)
    columns = {h: [r[i].strip() if i < len(r) else "" for r in rows] for i, h in enumerate(header)}
    return ManifestTable(columns, where)


def _check_widths(rows: list[list[str]], where: list[str], width: int, name: str) -> None:
    wide = [w for r, w in zip(rows, where, strict=True) if len(r) > width]
    if wide:
        raise LayoutError(
            f"manifest {name}: rows with more fields than the header's {width}: {_some(wide)}; "
            "quote values that contain the delimiter"
        )


def _some(items: list[str], n: int = 10) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


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
    column: list[Any], class_names: list[str] | None, where: list[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """Class names and integer labels from a label column.

    Labels are text (``001`` stays ``001``): the classes are the distinct labels, sorted
    (numerically when all are integers). Integer labels index `class_names` when those are
    given. Empty or missing labels are a LayoutError naming the rows.
    """
    where = where or [f"row {i + 1}" for i in range(len(column))]
    empty = [w for v, w in zip(column, where, strict=True) if v is None or str(v).strip() == ""]
    if empty:
        raise LayoutError(f"empty label in {_some(empty)}: every row needs a class label")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in column)
    if ints and class_names:
        labels = np.asarray(column, dtype=np.int64)
        bad = [w for v, w in zip(column, where, strict=True) if not 0 <= v < len(class_names)]
        if bad:
            raise LayoutError(
                f"integer labels must lie in 0..{len(class_names) - 1}; not so in {_some(bad)}"
            )
        return list(class_names), labels
    values = [str(v).strip() for v in column]
    names = class_names or sorted(set(values), key=_label_order)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise LayoutError(f"labels not among the class names: {unknown[:10]}")
    return list(names), np.asarray([index[v] for v in values], dtype=np.int64)


def _label_order(label: str) -> tuple[int, int, str]:
    """Integer-like labels in numeric order (then as written: ``1`` before ``01``), others
    after them alphabetically."""
    try:
        return (0, int(label), label)
    except ValueError:
        return (1, 0, label)


def read_manifest(
    path: Path, *, class_names: list[str] | None, allow_absolute: bool
) -> tuple[list[str], dict[str, Split], Any, Path]:
    """Parse a manifest into (class names, splits, image source, base directory)."""
    from app.imagedata.layout import FileSource

    table = read_table(path)
    cols = table.columns
    if "label" not in cols:
        raise LayoutError(f"manifest {path.name} has no 'label' column (columns: {sorted(cols)})")
    names, labels = manifest_labels(
        cols["label"], class_names or table.label_names, table.row_names
    )
    path_col = next((c for c in PATH_COLUMNS if c in cols), None)
    bytes_col = next((c for c in BYTES_COLUMNS if c in cols), None)
    if bytes_col is not None and path.suffix.lower() != ".csv":
        items: list[Any] = list(range(table.num_rows))
        source: Any = ParquetBytesSource(path, _original_column(path, bytes_col))
    elif path_col is not None:
        missing = [w for v, w in zip(cols[path_col], table.row_names, strict=True) if not v]
        if missing:
            raise LayoutError(f"empty {path_col} in {_some(missing)}: every row needs an image")
        raw = [str(v) for v in cols[path_col]]
        items = [safe_relative(v, path.parent, allow_absolute=allow_absolute) for v in raw]
        source = FileSource(path.parent)
    else:
        raise LayoutError(f"manifest {path.name} needs a 'path' column or an 'image' bytes column")
    split_col = cols["split"] if "split" in cols else ["all"] * len(items)
    return names, _group_splits(items, labels, split_col), source, path.parent


def _original_column(path: Path, lower: str) -> str:
    """The Parquet column whose lower-cased name is `lower`."""
    import pyarrow.parquet as pq

    return next(n for n in pq.read_schema(path).names if n.lower() == lower)


def _group_splits(items: list[Any], labels: np.ndarray, split_col: list[Any]) -> dict[str, Split]:
    keys = [SPLIT_ALIASES.get(str(s).strip().lower(), str(s).strip().lower()) for s in split_col]
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
