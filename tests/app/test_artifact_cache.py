"""A worker's cache of a remote artifact store (fsspec's memory filesystem here): copies of
removed artifacts go at the next prune, the bound in bytes holds (least recently used out
first), unused copies expire, copies a job reads are never removed, leftovers of older
versions and of killed downloads go."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.artifacts import Storage

SIZE = 1000  # bytes of each stored artifact


@pytest.fixture
def root() -> Iterator[str]:
    import fsspec

    url = f"memory://iimm-cache-test-{uuid.uuid4().hex}"
    yield url
    fs = fsspec.filesystem("memory")
    path = url.removeprefix("memory://")
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _store(storage: Storage, tmp_path: Path, key: str, fill: bytes = b"x") -> None:
    src = tmp_path / "src" / key
    src.mkdir(parents=True)
    (src / "data.bin").write_bytes(fill * SIZE)
    storage.put_dir(src, key)


def _cached(storage: Storage) -> set[str]:
    """The keys whose copy is on disk, read from the folders (not the records)."""
    return {
        str(p.parent.relative_to(storage.cache_dir))
        for p in storage.cache_dir.rglob("data.bin")
        if not p.relative_to(storage.cache_dir).parts[0].startswith(".")
    }


def test_a_removed_artifact_leaves_no_copy_after_prune(root: str, tmp_path: Path) -> None:
    storage = Storage(root, cache_dir=tmp_path / "cache")
    for key in ("datasets/a", "embeddings/b"):
        _store(storage, tmp_path, key)
        assert (storage.local_dir(key) / "data.bin").read_bytes() == b"x" * SIZE
    storage.cache.release()  # the job ended
    storage.delete("datasets/a")  # a cascade delete, or the orphan sweep
    report = storage.cache.prune(check_sources=True)
    assert report.gone == ["datasets/a"]
    assert _cached(storage) == {"embeddings/b"}
    assert storage.cache.usage() == (SIZE, 1)
    _store(storage, tmp_path / "again", "datasets/a", b"y")  # stored again: fetched again
    assert (storage.local_dir("datasets/a") / "data.bin").read_bytes() == b"y" * SIZE


def test_a_copy_in_use_is_kept_until_its_job_ends(root: str, tmp_path: Path) -> None:
    """Held by this process (the running job) or by another process on the machine (another
    Storage over the same folder has its own locks, as a second worker process does)."""
    worker = Storage(root, cache_dir=tmp_path / "cache")
    other = Storage(root, cache_dir=tmp_path / "cache")
    _store(worker, tmp_path, "datasets/a")
    worker.local_dir("datasets/a")
    worker.delete("datasets/a")
    assert other.cache.prune(check_sources=True).gone == []
    assert worker.cache.prune(check_sources=True).gone == []
    assert _cached(worker) == {"datasets/a"}
    worker.cache.release()
    assert other.cache.prune(check_sources=True).gone == ["datasets/a"]
    assert _cached(worker) == set()
    assert not list((tmp_path / "cache" / "iimm-cache" / ".entries").iterdir())


def test_the_bound_in_bytes_evicts_the_least_recently_used(root: str, tmp_path: Path) -> None:
    storage = Storage(root, cache_dir=tmp_path / "cache", cache_max_bytes=2 * SIZE + SIZE // 2)
    for key in ("datasets/a", "datasets/b", "datasets/c"):
        _store(storage, tmp_path, key)
    storage.local_dir("datasets/a")
    storage.local_dir("datasets/b")
    storage.cache.release()
    storage.local_dir("datasets/a")  # used again: b is now the least recently used
    storage.cache.release()
    storage.local_dir("datasets/c")  # over the bound: b goes
    assert _cached(storage) == {"datasets/a", "datasets/c"}
    assert storage.cache.usage() == (2 * SIZE, 2)
    report = storage.cache.prune(check_sources=False)
    assert report.evicted == [] and report.bytes == 2 * SIZE


def test_a_copy_larger_than_the_bound_stays_while_used(root: str, tmp_path: Path) -> None:
    storage = Storage(root, cache_dir=tmp_path / "cache", cache_max_bytes=SIZE // 2)
    _store(storage, tmp_path, "datasets/a")
    folder = storage.local_dir("datasets/a")
    assert (folder / "data.bin").stat().st_size == SIZE  # not evicted under the job
    storage.cache.release()
    assert storage.cache.prune(check_sources=False).evicted == ["datasets/a"]
    assert _cached(storage) == set()


def test_copies_unused_for_the_retention_expire(root: str, tmp_path: Path) -> None:
    import time

    storage = Storage(root, cache_dir=tmp_path / "cache", cache_retention_s=3600)
    _store(storage, tmp_path, "datasets/a")
    storage.local_dir("datasets/a")
    storage.cache.release()
    now = time.time_ns()
    assert storage.cache.prune(check_sources=False, now_ns=now).expired == []
    later = now + 3601 * 10**9
    assert storage.cache.prune(check_sources=False, now_ns=later).expired == ["datasets/a"]
    assert _cached(storage) == set()


def test_unrecorded_folders_and_dead_downloads_go(root: str, tmp_path: Path) -> None:
    """An older version's copies (no record) and a download whose process died go; a
    recorded copy stays."""
    import subprocess
    import sys

    storage = Storage(root, cache_dir=tmp_path / "cache")
    _store(storage, tmp_path, "datasets/a")
    storage.local_dir("datasets/a")
    storage.cache.release()
    old = storage.cache_dir / "datasets" / "old"
    old.mkdir()
    (old / "data.bin").write_bytes(b"z")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    partial = storage.cache_dir / f".partial-{dead.stdout.strip()}-abc"
    partial.mkdir()
    mine = storage.cache_dir / ".partial-1-abc"  # pid 1 is alive: a download in progress
    mine.mkdir()
    report = storage.cache.prune(check_sources=False)
    assert sorted(report.unrecorded) == sorted(["datasets/old", partial.name])
    assert _cached(storage) == {"datasets/a"} and mine.is_dir()


def test_a_local_store_has_no_cache(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    _store(storage, tmp_path, "datasets/a")
    assert storage.local_dir("datasets/a") == tmp_path / "store" / "datasets" / "a"
    assert not (tmp_path / "cache").exists()
