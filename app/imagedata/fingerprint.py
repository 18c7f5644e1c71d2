"""Dataset fingerprints: a content hash that keys every artifact derived from a dataset."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.imagedata.layout import Split

_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files_digest(root: Path, relpaths: Iterable[str], *, mode: str = "content") -> str:
    """One digest over files under `root` (sorted): their names and contents, or with
    ``mode="stat"`` their names, sizes and modification times (fast, for huge trees)."""
    h = hashlib.sha256()
    for rel in sorted(set(relpaths)):
        h.update(rel.encode() + b"\0")
        path = root / rel
        if mode == "stat":
            st = path.stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        else:
            h.update(bytes.fromhex(file_digest(path)))
    return h.hexdigest()


def layout_fingerprint(
    *, content: str, class_names: list[str], splits: dict[str, Split], extra: dict[str, Any]
) -> str:
    """SHA-256 over the content digest, the class names and every split's items and labels."""
    h = hashlib.sha256()
    head = {"content": content, "class_names": class_names, "extra": extra}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name in sorted(splits):
        split = splits[name]
        h.update(f"\0split:{name}:{len(split)}\0".encode())
        h.update("\0".join(map(str, split.items)).encode())
        h.update(split.labels.astype("<i8").tobytes())
    return h.hexdigest()
