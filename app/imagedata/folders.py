"""Image-folder datasets: ``class/*.png`` or ``split/class/*.png`` (any depth below a class)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.imagedata.errors import LayoutError
from app.imagedata.layout import Split
from app.imagedata.splits import SPLIT_ALIASES

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
CLASSNAMES_FILE = "classnames.json"


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not _hidden(p.name))


def _hidden(name: str) -> bool:
    return name.startswith((".", "_")) or name == "__MACOSX"


def is_image_name(name: str) -> bool:
    """True for a visible file whose suffix is a known image format."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def find_dataset_root(root: Path) -> Path:
    """Descend through single wrapping directories (``archive/EuroSAT/...``) to the dataset."""
    while True:
        dirs = _visible_dirs(root)
        has_images = any(is_image_name(p.name) for p in root.iterdir() if p.is_file())
        is_split = len(dirs) == 1 and dirs[0].name.lower() in SPLIT_ALIASES
        if len(dirs) == 1 and not has_images and not is_split and _visible_dirs(dirs[0]):
            root = dirs[0]
            continue
        return root


def read_folder(root: Path) -> tuple[list[str], dict[str, Split]]:
    """Class folder names (sorted) and the splits found under `root`.

    Split directories (train/test/val and their aliases) are used when every top-level
    directory is one; otherwise the top-level directories are the classes of one split "all".
    """
    dirs = _visible_dirs(root)
    if not dirs:
        raise LayoutError(f"no class directories found in {root}")
    if all(d.name.lower() in SPLIT_ALIASES for d in dirs):
        by_split = {SPLIT_ALIASES[d.name.lower()]: d for d in dirs}
    else:
        by_split = {"all": root}
    folders = sorted({c.name for d in by_split.values() for c in _visible_dirs(d)})
    if not folders:
        raise LayoutError(f"no class directories found under {root}")
    splits = {name: _read_split(root, d, name, folders) for name, d in by_split.items()}
    totals = np.sum([s.class_counts(len(folders)) for s in splits.values()], axis=0)
    empty = [folders[i] for i in np.flatnonzero(totals == 0)]
    if empty:
        raise LayoutError(f"class folders with no images: {empty} (remove them or add images)")
    return folders, splits


def _read_split(root: Path, split_dir: Path, name: str, folders: list[str]) -> Split:
    items: list[str] = []
    labels: list[int] = []
    for label, folder in enumerate(folders):
        class_dir = split_dir / folder
        if not class_dir.is_dir():
            continue
        files = sorted(
            p.relative_to(root).as_posix()
            for p in class_dir.rglob("*")
            if p.is_file() and is_image_name(p.name) and not any(map(_hidden, p.parts[-2:-1]))
        )
        items.extend(files)
        labels.extend([label] * len(files))
    return Split(name, items, np.asarray(labels, dtype=np.int64))


def folder_display_names(root: Path, folders: list[str]) -> list[str]:
    """Readable class names: ``classnames.json`` ({folder: name}) when present, otherwise the
    folder names with underscores as spaces."""
    mapping: dict[str, str] = {}
    path = root / CLASSNAMES_FILE
    if path.is_file():
        try:
            mapping = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LayoutError(f"{CLASSNAMES_FILE} is not valid JSON: {exc}") from None
        if not isinstance(mapping, dict):
            raise LayoutError(f"{CLASSNAMES_FILE} must map folder names to class names")
    return [str(mapping.get(f, f.replace("_", " "))) for f in folders]
