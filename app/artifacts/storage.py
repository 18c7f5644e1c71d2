"""Content lives under keys (`datasets/<id>/...`, `embeddings/<hash>/...`) of one root URL."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
from fsspec.implementations.local import LocalFileSystem

from app.artifacts.cache import LocalCache

if TYPE_CHECKING:
    from app.config import Settings


class Storage:
    """Artifacts under one fsspec root; local roots are used in place, remote ones cached
    (`app.artifacts.cache`: bounded, and pruned of what the store no longer has)."""

    def __init__(
        self, root: str, cache_dir: str | Path | None = None, *, cache_max_bytes: int = 0,
        cache_retention_s: float = 0.0, cache_check_interval_s: float = 600.0,
    ) -> None:  # fmt: skip
        self.url = root
        self.fs, path = fsspec.core.url_to_fs(root)
        self.root = path.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)
        self.cache_dir = Path(cache_dir or tempfile.gettempdir()) / "iimm-cache"
        self.cache = LocalCache(
            self.cache_dir, max_bytes=cache_max_bytes, retention_s=cache_retention_s,
            check_interval_s=cache_check_interval_s, exists=lambda url: bool(self.fs.exists(url)),
        )  # fmt: skip

    @classmethod
    def for_settings(cls, settings: Settings) -> Storage:
        """The store of `settings`, its cache in ``<data dir>/cache`` with the settings'
        bounds."""
        return cls(
            settings.artifacts_url, cache_dir=settings.data_dir / "cache",
            cache_max_bytes=settings.artifact_cache_max_bytes,
            cache_retention_s=settings.artifact_cache_retention_s,
            cache_check_interval_s=settings.artifact_cache_check_interval_s,
        )  # fmt: skip

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
        """A local directory holding the contents of `key` (downloaded once if remote; the
        copy is kept from pruning until `self.cache.release()`, which the runner calls after
        each job)."""
        if self.is_local:
            return Path(self.path(key))
        key = key.strip("/")
        return self.cache.get(
            key,
            self.source_url(key),
            lambda into: self.fs.get(self.path(key) + "/", str(into), recursive=True),
        )

    def source_url(self, key: str) -> str:
        """The URL of `key` in the store (what a cache entry's existence is checked at)."""
        return self.fs.unstrip_protocol(self.path(key))

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        return bool(self.fs.exists(self.path(key)))

    def delete(self, key: str) -> None:
        """Remove `key` and everything under it (no error if absent)."""
        if self.fs.exists(self.path(key)):
            self.fs.rm(self.path(key), recursive=True)
