"""WebDataset shards: ``.tar`` files of samples ``KEY.jpg``/``KEY.png`` + ``KEY.cls`` or
``KEY.json`` (the format of clip-retrieval and CLIP_benchmark's ``wds_*`` datasets).

A shard is indexed once by reading its tar headers (and the tiny label members); an image is
then read from its shard at its byte offset, so workers stream each shard in order and
nothing is extracted. Shards are ``*.tar`` files in a folder (``train/``/``test/`` sub-folders
are splits) or one ``.tar`` file. Class names come from ``classnames.txt`` (one per line, as
CLIP_benchmark writes it), else from the labels (text, or integers as text). A sample's key is
its path up to the first dot of the file name, as in the ``webdataset`` library.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.imagedata.decode import decode_image
from app.imagedata.errors import LayoutError
from app.imagedata.layout import Split
from app.imagedata.manifest import manifest_labels
from app.imagedata.splits import SPLIT_ALIASES

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "tif", "tiff")
LABEL_EXTS = ("cls", "cls2", "label", "json")
CLASSNAMES_TXT = "classnames.txt"


@dataclass(frozen=True)
class ShardItem:
    """Where one sample's image lies: shard number, byte offset and size, its key."""

    shard: int
    offset: int
    size: int
    key: str


@dataclass(frozen=True)
class WebDatasetSource:
    """Items are :class:`ShardItem`; images are read at their offsets (picklable)."""

    shards: tuple[Path, ...]

    def open(self, item: ShardItem) -> Image.Image:
        with open(self.shards[item.shard], "rb") as fh:
            fh.seek(item.offset)
            data = fh.read(item.size)
        return decode_image(data, name=self.describe(item))

    def files_used(self) -> tuple[Path, ...]:
        """The data files read (for the dataset's fingerprint)."""
        return self.shards

    def describe(self, item: ShardItem) -> str:
        return f"{self.shards[item.shard].name}:{item.key}"


def _split_key(name: str) -> tuple[str, str]:
    """(key, extension) of a member name: ``a/b.c.jpg`` -> (``a/b``, ``c.jpg``)."""
    head, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower()


def _label_of(ext: str, data: bytes, where: str) -> Any:
    text = data.decode("utf-8", errors="replace").strip()
    if ext != "json":
        return int(text) if text.lstrip("-").isdigit() else text
    try:
        doc = json.loads(text)
    except ValueError:
        raise LayoutError(f"{where}: label JSON is not valid") from None
    for field in ("label", "cls", "class", "target"):
        if isinstance(doc, dict) and field in doc:
            return doc[field]
    raise LayoutError(f"{where}: label JSON has none of label, cls, class, target")


def is_webdataset_tar(path: Path, probe: int = 20) -> bool:
    """True when the first members of the tar `path` pair images with label files by key."""
    try:
        with tarfile.open(path, mode="r:") as tf:
            keys: dict[str, set[str]] = {}
            for i, member in enumerate(tf):
                if i >= probe:
                    break
                key, ext = _split_key(member.name)
                keys.setdefault(key, set()).add(ext)
    except (tarfile.TarError, OSError):
        return False
    return any(exts & set(IMAGE_EXTS) and exts & set(LABEL_EXTS) for exts in keys.values())


def _open_shard(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except tarfile.ReadError:
        raise LayoutError(
            f"shard {path.name} is not an uncompressed tar: WebDataset shards are read in "
            "place, so give .tar files (not .tar.gz)"
        ) from None


def _index_shard(path: Path, number: int) -> Iterator[tuple[ShardItem, Any]]:
    """(item, label) per sample of one uncompressed shard, reading headers and labels only."""
    with _open_shard(path) as tf:
        images: dict[str, tarfile.TarInfo] = {}
        labels: dict[str, Any] = {}
        for member in tf:
            if not member.isfile():
                continue
            key, ext = _split_key(member.name)
            if ext in IMAGE_EXTS:
                images[key] = member
            elif ext in LABEL_EXTS and key not in labels:
                src = tf.extractfile(member)
                data = src.read() if src is not None else b""
                labels[key] = _label_of(ext, data, f"{path.name}:{member.name}")
    missing = sorted(set(images) - set(labels))
    if missing:
        raise LayoutError(
            f"shard {path.name}: samples without a .cls or .json label: {missing[:10]}"
        )
    for key, member in images.items():
        yield ShardItem(number, member.offset_data, member.size, key), labels[key]


def _shards_by_split(path: Path) -> dict[str, list[Path]]:
    if path.is_file():
        return {"all": [path]}
    subdirs = {d: sorted(d.glob("*.tar")) for d in path.iterdir() if d.is_dir()}
    split_dirs = {SPLIT_ALIASES[d.name.lower()]: s for d, s in subdirs.items()
                  if d.name.lower() in SPLIT_ALIASES and s}  # fmt: skip
    if split_dirs:
        return split_dirs
    top = sorted(path.glob("*.tar"))
    if not top:
        raise LayoutError("no .tar shards found (expected *.tar or train/*.tar, test/*.tar)")
    return {"all": top}


def is_webdataset_dir(path: Path) -> bool:
    """True for a folder of ``*.tar`` shards (or of split folders of them)."""
    try:
        shards = _shards_by_split(path)
    except LayoutError:
        return False
    return is_webdataset_tar(next(iter(shards.values()))[0])


def read_webdataset(
    path: Path, class_names: list[str] | None
) -> tuple[list[str], dict[str, Split], WebDatasetSource]:
    """Class names, splits and the image source of the shards at `path`."""
    by_split = _shards_by_split(path)
    shards = [s for group in by_split.values() for s in group]
    names_file = (path if path.is_dir() else path.parent) / CLASSNAMES_TXT
    if class_names is None and names_file.is_file():
        lines = names_file.read_text(encoding="utf-8").splitlines()
        class_names = [line.strip() for line in lines if line.strip()]
    items: dict[str, list[ShardItem]] = {}
    raw: dict[str, list[Any]] = {}
    for split, group in by_split.items():
        for shard in group:
            for item, label in _index_shard(shard, shards.index(shard)):
                items.setdefault(split, []).append(item)
                raw.setdefault(split, []).append(label)
    order = [s for s in items]
    flat = [label for s in order for label in raw[s]]
    names, labels = manifest_labels(flat, class_names)
    splits, start = {}, 0
    for s in order:
        n = len(items[s])
        splits[s] = Split(s, items[s], np.asarray(labels[start : start + n], dtype=np.int64))
        start += n
    return names, splits, WebDatasetSource(tuple(shards))
