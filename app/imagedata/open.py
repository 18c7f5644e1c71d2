"""`open_dataset`: detect a dataset's layout (folder, archive, manifest) and describe it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.imagedata.archive import ArchiveLimits, extract_archive, is_archive
from app.imagedata.classnames import known_folder_names
from app.imagedata.errors import LayoutError
from app.imagedata.fingerprint import file_digest, files_digest, layout_fingerprint
from app.imagedata.fmow import fmow_root, read_fmow
from app.imagedata.folders import (
    find_dataset_root,
    folder_display_names,
    read_folder,
    skipped_files,
)
from app.imagedata.layout import DatasetLayout, FileSource, Split
from app.imagedata.manifest import ParquetBytesSource, read_manifest
from app.imagedata.prompts import canonical_name
from app.imagedata.splits import TEST_FRACTION, derive_splits

MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")
_MARKER = ".iimm-extracted.json"


def open_dataset(
    path: str | Path,
    *,
    name: str | None = None,
    class_names: list[str] | None = None,
    extract_dir: str | Path | None = None,
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
    fingerprint_mode: str = "content",
    allow_absolute_paths: bool = False,
    limits: ArchiveLimits | None = None,
    name_encoding: str | None = None,
) -> DatasetLayout:
    """Open an image folder, a zip/tar archive of one, a CSV/Parquet manifest, or data read in
    place: WebDataset shards, Hugging Face datasets, fMoW in WILDS' layout (`app.imagedata.fmow`).

    Splits are train/test as given (a seeded stratified test split when missing), plus the
    paper's validation split (10% of train, at most 5000, seeded) and train_no_val.
    `class_names` overrides the names from folders or manifest (same order as the labels).
    Files of a folder or archive that are not used are listed in ``layout.skipped``;
    `name_encoding` decodes archive member names that declare no encoding.
    """
    path = Path(path)
    if not path.exists():
        raise LayoutError(f"dataset not found: {path}")
    name = name or _guess_name(path)
    skipped: list[dict[str, Any]] = []
    if path.is_dir() and (fmow := fmow_root(path)):
        names, splits = read_fmow(fmow)
        names = class_names or names
        root, kind, source, content = fmow, "fmow", FileSource(fmow), None
    elif kind_in_place := _in_place_format(path):
        names, splits, source, files = _read_in_place(kind_in_place, path, class_names)
        root, kind = path, kind_in_place
        base = path if path.is_dir() else path.parent
        content: Any = partial(files_digest, base, files, mode=fingerprint_mode)
    elif path.is_dir() or is_archive(path):
        scan_root = path if path.is_dir() else _extract(path, extract_dir, limits, name_encoding)
        root = find_dataset_root(scan_root)
        folders, splits = read_folder(root)
        skipped = skipped_files(scan_root, used_paths(root, splits))
        names = class_names or known_folder_names(canonical_name(name), folders)
        names = names or folder_display_names(root, folders)
        source: Any = FileSource(root)
        kind, content = ("folder" if path.is_dir() else "archive"), None
    elif path.suffix.lower() in MANIFEST_SUFFIXES:
        names, splits, source, root = read_manifest(
            path, class_names=class_names, allow_absolute=allow_absolute_paths
        )
        kind = "parquet" if path.suffix.lower() != ".csv" else "csv"
        bytes_in_manifest = isinstance(source, ParquetBytesSource)
        content = (lambda: file_digest(path)) if bytes_in_manifest else None
    else:
        raise LayoutError(f"not a dataset folder, archive or manifest: {path.name}")
    layout = build_layout(
        kind=kind,
        location=str(root),
        name=name,
        class_names=list(names),
        splits=splits,
        source=source,
        seed=seed,
        test_fraction=test_fraction,
        content=content or (lambda: _files_content(root, splits, fingerprint_mode)),
    )
    layout.skipped = skipped
    return layout


def _in_place_format(path: Path) -> str | None:
    """ "huggingface" or "webdataset" for data read in place, None otherwise."""
    from app.imagedata.huggingface import is_hf_dir
    from app.imagedata.webdataset import is_webdataset_dir, is_webdataset_tar

    if path.is_dir():
        if is_hf_dir(path):
            return "huggingface"
        return "webdataset" if is_webdataset_dir(path) else None
    if path.suffix.lower() == ".tar" and is_webdataset_tar(path):
        return "webdataset"
    return None


def _read_in_place(
    kind: str, path: Path, class_names: list[str] | None
) -> tuple[list[str], dict[str, Split], Any, list[str]]:
    """Names, splits, source and the data files (relative) of a HF or WebDataset dataset."""
    from app.imagedata.huggingface import read_huggingface
    from app.imagedata.webdataset import read_webdataset

    if kind == "huggingface":
        names, splits, source = read_huggingface(path, class_names)
    else:
        names, splits, source = read_webdataset(path, class_names)
    base = path if path.is_dir() else path.parent
    return names, splits, source, [str(f.relative_to(base)) for f in source.files_used()]


def used_paths(root: Path, splits: dict[str, Split]) -> set[str]:
    """The files a folder layout uses, as paths joined to `root` (for ``skipped_files``)."""
    base = str(root)
    return {os.path.join(base, str(i)) for s in splits.values() for i in s.items}


def build_layout(
    *,
    kind: str,
    location: str,
    name: str | None,
    class_names: list[str],
    splits: dict[str, Split],
    source: Any,
    seed: int,
    test_fraction: float,
    content: str | Callable[[], str],
) -> DatasetLayout:
    """Validate classes, derive the missing splits and fingerprint the result.

    `content` is the digest of the data (or a function computing it, called after the cheap
    checks so that a malformed dataset is rejected before its files are hashed).
    """
    check_classes(class_names, splits)
    content = content() if callable(content) else content
    splits, derived = derive_splits(splits, seed=seed, test_fraction=test_fraction)
    extra = {"seed": seed, "test_fraction": test_fraction, "derived": derived}
    fp = layout_fingerprint(content=content, class_names=class_names, splits=splits, extra=extra)
    layout = DatasetLayout(kind, location, class_names, splits, source, fp, name, derived)
    layout.warnings = small_split_warnings(class_names, splits)
    return layout


#: A class needs at least this many test images for its accuracy to be measured.
MIN_TEST_PER_CLASS = 2


def small_split_warnings(class_names: list[str], splits: dict[str, Split]) -> list[dict[str, Any]]:
    """A warning naming the classes with fewer than 2 test images (per-class accuracy and the
    measures' class statistics rest on one image or none for them)."""
    test = splits.get("test")
    if test is None:
        return []
    counts = test.class_counts(len(class_names))
    small = [n for n, c in zip(class_names, counts, strict=True) if c < MIN_TEST_PER_CLASS]
    if not small:
        return []
    return [
        {
            "code": "small_test_split",
            "detail": f"{len(small)} of {len(class_names)} classes have fewer than "
            f"{MIN_TEST_PER_CLASS} test images; accuracy and measures on the test split rest "
            "on one image or none for them",
            "items": small[:50],
        }
    ]


def check_classes(class_names: list[str], splits: dict[str, Split]) -> None:
    """Reject single-class datasets and classes without any sample, naming them."""
    if len(class_names) < 2:
        raise LayoutError(
            f"a classification dataset needs at least 2 classes; found {len(class_names)} "
            f"({class_names}); zero-shot accuracy and the measures are undefined otherwise"
        )
    if len(set(class_names)) != len(class_names):
        raise LayoutError(f"class names are not unique: {class_names}")
    counts = [0] * len(class_names)
    for split in splits.values():
        for i, c in enumerate(split.class_counts(len(class_names))):
            counts[i] += c
    empty = [n for n, c in zip(class_names, counts, strict=True) if c == 0]
    if empty:
        raise LayoutError(f"classes with no images: {empty}")
    if sum(len(s) for s in splits.values()) == 0:
        raise LayoutError("dataset has no images")


def _files_content(root: Path, splits: dict[str, Split], mode: str) -> str:
    items = [str(i) for s in splits.values() for i in s.items]
    try:
        return files_digest(root, items, mode=mode)
    except FileNotFoundError as exc:
        missing = os.path.relpath(str(exc.filename), root) if exc.filename else "?"
        raise LayoutError(f"file named by the dataset is missing: {missing}") from None


def _guess_name(path: Path) -> str:
    stem = path.name
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tar", ".tgz", ".csv", ".parquet"):
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _extract(
    archive: Path,
    extract_dir: str | Path | None,
    limits: ArchiveLimits | None,
    name_encoding: str | None = None,
) -> Path:
    """Extract once: a marker holding the archive's digest lets later opens reuse the files."""
    dest = Path(extract_dir) if extract_dir else archive.with_name(archive.name + ".extracted")
    digest = file_digest(archive)
    marker = dest / _MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("sha256") == digest:
        return dest
    extract_archive(archive, dest, limits=limits, name_encoding=name_encoding)
    marker.write_text(json.dumps({"sha256": digest, "archive": archive.name}))
    return dest
