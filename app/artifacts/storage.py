"""Content lives under keys (`datasets/<id>/...`, `embeddings/<hash>/...`) of one root URL."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem


class Storage:
    """Artifacts under one fsspec root; local roots are used in place, remote ones cached."""

    def __init__(self, root: str, cache_dir: str | Path | None = None) -> None:
        self.fs, path = fsspec.core.url_to_fs(root)
        self.root = path.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)
        self.cache_dir = Path(cache_dir or tempfile.gettempdir()) / "iimm-cache"

    def path(self, key: str) -> str:
        """The full path (in the storage's filesystem) of `key`."""
        return f"{self.root}/{key.strip('/')}"

    def ping(self) -> None:
        """Raise if the storage root cannot be reached."""
        self.fs.ls(self.root)

    def put_dir(self, local_dir: str | Path, key: str) -> None:
        """Copy (move, when local) a finished directory to `key`, replacing what was there."""
        dest = self.path(key)
        if self.is_local:
            if os.path.exists(dest):
                shutil.rmtree(dest)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(str(local_dir), dest)
            return
        self.fs.put(str(local_dir), dest, recursive=True)

    def local_dir(self, key: str) -> Path:
        """A local directory holding the contents of `key` (downloaded once if remote)."""
        if self.is_local:
            return Path(self.path(key))
        target = self.cache_dir / key
        if not target.exists():
            self.cache_dir.parent.mkdir(parents=True, exist_ok=True)  # a fresh worker has none
            tmp = Path(tempfile.mkdtemp(dir=self.cache_dir.parent))
            self.fs.get(self.path(key) + "/", str(tmp), recursive=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        return target

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        return bool(self.fs.exists(self.path(key)))

    def delete(self, key: str) -> None:
        """Remove `key` and everything under it (no error if absent)."""
        if self.fs.exists(self.path(key)):
            self.fs.rm(self.path(key), recursive=True)
