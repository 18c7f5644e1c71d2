"""Where checkpoints go: a local directory, or any object with ``open(path, mode)``.

The service passes an fsspec filesystem rooted at the job's artifact prefix, e.g.
``fsspec.implementations.dirfs.DirFileSystem(path="s3://bucket/jobs/42", fs=s3)``; paths
given to it are relative (``"checkpoint-a.pt"``, ``"grid/003/final.pt"``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Store(Protocol):
    """Anything that opens relative paths for binary reading and writing."""

    def open(self, path: str, mode: str) -> IO[Any]: ...


class LocalStore:
    """A local directory; writes go to a temporary file renamed into place (atomic)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def open(self, path: str, mode: str) -> IO[Any]:
        target = self.root / path
        if any(c in mode for c in "wa"):
            target.parent.mkdir(parents=True, exist_ok=True)
        return open(target, mode)

    def write_atomic(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)


class SubStore:
    """The part of another store under ``prefix/`` (one grid point's run)."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def open(self, path: str, mode: str) -> IO[Any]:
        return self.store.open(f"{self.prefix}/{path}", mode)

    def write_atomic(self, path: str, data: bytes) -> None:
        write_bytes(self.store, f"{self.prefix}/{path}", data)


def as_store(location: str | os.PathLike[str] | Store) -> Store:
    """A :class:`Store` for a directory path or an object with ``open(path, mode)``."""
    if isinstance(location, str | os.PathLike):
        return LocalStore(location)
    if callable(getattr(location, "open", None)):
        return location
    raise TypeError(
        f"checkpoint location must be a path or have open(path, mode), got "
        f"{type(location).__name__}"
    )


def write_bytes(store: Store, path: str, data: bytes) -> None:
    """Write ``data`` to ``path``, atomically where the store can (local, object stores)."""
    atomic = getattr(store, "write_atomic", None)
    if callable(atomic):
        atomic(path, data)
        return
    makedirs = getattr(store, "makedirs", None)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent and callable(makedirs):
        makedirs(parent, exist_ok=True)
    with store.open(path, "wb") as f:
        f.write(data)


def read_bytes(store: Store, path: str) -> bytes | None:
    """Contents of ``path``, or ``None`` when it does not exist."""
    try:
        with store.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def save_object(store: Store, path: str, obj: Any) -> None:
    """``torch.save`` ``obj`` (tensors, dicts, lists, numbers, strings) to ``path``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(store, path, buffer.getvalue())


def load_object(store: Store, path: str) -> Any | None:
    """Inverse of :func:`save_object` (``weights_only``: no code runs); ``None`` if absent."""
    data = read_bytes(store, path)
    if data is None:
        return None
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
