"""Image-folder datasets: ``class/*.png`` or ``split/class/*.png`` (any depth below a class).

Class folder names are compared in Unicode NFC, so folders spelled in different normal forms
(macOS writes NFD) are one class. What is not used is listed, never dropped silently: see
:func:`skipped_files` for the rule.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from app.imagedata.errors import LayoutError
from app.imagedata.layout import Split
from app.imagedata.names import nfc
from app.imagedata.splits import SPLIT_ALIASES

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
CLASSNAMES_FILE = "classnames.json"


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not _hidden(p.name))


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


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
    """Class folder names (NFC, sorted) and the splits found under `root`.

    Split directories (train/test/val and their aliases) are used when every top-level
    directory is one; otherwise the top-level directories are the classes of one split "all".
    Folders whose names are equal in NFC are one class.
    """
    dirs = _visible_dirs(root)
    if not dirs:
        raise LayoutError("no class directories found (expected class/*.png or split/class/*.png)")
    if all(d.name.lower() in SPLIT_ALIASES for d in dirs):
        by_split = {SPLIT_ALIASES[d.name.lower()]: d for d in dirs}
    else:
        by_split = {"all": root}
    folders = _class_order({nfc(c.name) for d in by_split.values() for c in _visible_dirs(d)})
    if not folders:
        raise LayoutError("no class directories found inside the split folders")
    splits = {name: _read_split(root, d, name, folders) for name, d in by_split.items()}
    totals = np.sum([s.class_counts(len(folders)) for s in splits.values()], axis=0)
    empty = [folders[i] for i in np.flatnonzero(totals == 0)]
    if empty:
        raise LayoutError(f"class folders with no images: {empty} (remove them or add images)")
    return folders, splits


def _class_order(names: set[str]) -> list[str]:
    """Class folders sorted by name; numerically when all are class indices (ImageNet-V2)."""
    if names and all(n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _read_split(root: Path, split_dir: Path, name: str, folders: list[str]) -> Split:
    class_dirs: dict[str, list[Path]] = defaultdict(list)
    for d in _visible_dirs(split_dir):
        class_dirs[nfc(d.name)].append(d)
    items: list[str] = []
    labels: list[int] = []
    for label, folder in enumerate(folders):
        files = sorted(
            p.relative_to(root).as_posix()
            for class_dir in class_dirs.get(folder, [])
            for p in class_dir.rglob("*")
            if p.is_file() and _usable(p.relative_to(class_dir))
        )
        items.extend(files)
        labels.extend([label] * len(files))
    return Split(name, items, np.asarray(labels, dtype=np.int64))


def _usable(rel: Path) -> bool:
    """An image file below a class folder, in no hidden sub-folder."""
    return is_image_name(rel.name) and not any(_hidden(p) for p in rel.parts[:-1])


#: Why a file is not used, in the order the rule is applied.
SKIP_REASONS = {
    "macos_metadata": "macOS metadata (__MACOSX folders, ._ files)",
    "hidden": "hidden (a name, or a folder's name, starting with '.' or '_')",
    "not_image": "not an image file (suffix not one of the image formats)",
    "outside_class_folders": "an image outside the class folders",
    "not_in_manifest": "not named by the manifest",
}
_OWN_FILES = frozenset({CLASSNAMES_FILE, ".iimm-extracted.json"})


def skip_reason(rel: str, *, manifest: bool = False) -> str:
    """The key of :data:`SKIP_REASONS` for a file (path relative to the upload) not used."""
    parts = rel.split("/")
    if "__MACOSX" in parts or parts[-1].startswith("._"):
        return "macos_metadata"
    if any(_hidden(p) for p in parts[:-1]) or parts[-1].startswith("."):
        return "hidden"
    if manifest:
        return "not_in_manifest"
    if not is_image_name(parts[-1]):
        return "not_image"
    return "outside_class_folders"


def skipped_files(
    scan_root: Path, used: set[str], *, manifest: bool = False, examples: int = 5
) -> list[dict[str, object]]:
    """Every file under `scan_root` not in `used` (absolute paths), grouped by reason.

    Returns ``[{"reason", "description", "count", "examples"}]`` with paths relative to
    `scan_root` (the upload's own names), at most `examples` of them per reason.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for dirpath, _, files in os.walk(scan_root):
        for f in files:
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, scan_root).replace(os.sep, "/")
            if full in used or rel in _OWN_FILES:
                continue
            groups[skip_reason(rel, manifest=manifest)].append(rel)
    return [
        {"reason": r, "description": SKIP_REASONS[r], "count": len(groups[r]),
         "examples": sorted(groups[r])[:examples]}
        for r in SKIP_REASONS if groups.get(r)
    ]  # fmt: skip


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
