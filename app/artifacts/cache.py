"""A worker's local copies of a remote artifact store's directories, bounded and coherent.

Jobs read artifacts as local folders (image folders, `np.load` with `mmap_mode`), so a remote
store's `datasets/<id>`, `embeddings/<hash>`, ... are fetched whole, once, into
``<data dir>/cache/iimm-cache/<key>``. fsspec's caching filesystems (``filecache``,
``simplecache``) cache single files under hashed names as they are opened, expire them by the
time they were fetched and have no bound in bytes, so they give no local folder to read and
would check the remote once per image: this keeps whole folders instead. Remote references
(a dataset or model registered by an `https://`/`s3://` URI) are kept here too, under
``remote/<digest of the URI>``; the service never deletes those sources, so their copies go
by age and the bound only.

Each entry has a record in ``.entries/<digest of key>.json`` (its key, source URL, bytes and
last use) and a lock file beside it. A process using an entry holds a shared `flock` on it
until `release` (the worker's runner releases after each job); `prune` takes an exclusive
lock without waiting, so an entry some job on this machine reads is never removed. `prune`
removes an entry

- whose source is gone from the store (a cascade delete or the orphan sweep removed it),
  when asked to check sources;
- not used for `retention_s`;
- while the entries together exceed `max_bytes`, least recently used first;

and folders of the cache that no record describes (an older version's copies, a download
cut short by a kill). The runner prunes at worker start, after each job (sources checked
every `check_interval_s`) and, in the embedded worker, while idle; `iimm maintenance` prunes
the cache of its data directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("iimm.cache")

ENTRIES = ".entries"
PARTIAL = ".partial-"


@dataclass
class PruneReport:
    """What one `prune` removed (keys by reason) and what the cache holds after it."""

    gone: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    bytes: int = 0
    entries: int = 0


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class LocalCache:
    """Local copies of remote folders under `root`, keyed like the store (see module doc)."""

    def __init__(
        self, root: str | Path, *, max_bytes: int = 0, retention_s: float = 0.0,
        check_interval_s: float = 600.0, exists: Callable[[str], bool] | None = None,
    ) -> None:  # fmt: skip
        """`max_bytes` 0: no bound in bytes; `retention_s` 0: no retention limit; `exists`:
        whether a source URL still exists (default: fsspec's filesystem of the URL)."""
        self.root = Path(root)
        self.exists = exists or _source_exists
        self.max_bytes, self.retention_s = max_bytes, retention_s
        self.check_interval_s = check_interval_s
        self._pins: dict[str, int] = {}  # key -> fd holding the shared lock
        self._lock = threading.Lock()
        self._last_check = 0.0
        self._last_used = 0
        _INSTANCES.add(self)

    # -- records ---------------------------------------------------------------------------

    def _record(self, key: str) -> Path:
        return self.root / ENTRIES / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def _now_ns(self) -> int:
        """Now, strictly after this process's previous use (LRU order within a process)."""
        self._last_used = max(time.time_ns(), self._last_used + 1)
        return self._last_used

    def _write_record(self, key: str, source: str, size: int) -> None:
        record = self._record(key)
        tmp = record.with_suffix(f".{os.getpid()}.tmp")
        body = {"key": key, "source": source, "bytes": size, "used_ns": self._now_ns()}
        tmp.write_text(json.dumps(body))
        tmp.replace(record)

    def _records(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted((self.root / ENTRIES).glob("*.json")):
            try:
                out.append({**json.loads(path.read_text()), "_record": path})
            except (OSError, ValueError):  # half-written by a killed process
                path.unlink(missing_ok=True)
        return out

    # -- use -------------------------------------------------------------------------------

    def _pin(self, key: str) -> None:
        """Hold a shared lock on `key`'s entry until `release` (no prune removes it)."""
        with self._lock:
            if key in self._pins:
                return
            lock = self._record(key).with_suffix(".lock")
            lock.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_SH)
                try:  # a prune may have unlinked this lock file while we waited for it
                    if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
            self._pins[key] = fd

    def release(self) -> None:
        """Let prunes remove what this process used (after a job)."""
        with self._lock:
            pins, self._pins = self._pins, {}
        for fd in pins.values():
            os.close(fd)

    def get(self, key: str, source: str, fetch: Callable[[Path], None]) -> Path:
        """The local folder of `key`; on a miss `fetch(folder)` fills a fresh folder, which
        then becomes the entry (`source`: the URL whose existence keeps it; "" for one never
        checked). The entry stays pinned until `release`."""
        self._pin(key)
        target = self.root / key
        record = self._record(key)
        if target.exists() and record.exists():
            with contextlib.suppress(OSError, ValueError):
                body = json.loads(record.read_text())
                self._write_record(key, source, int(body.get("bytes", 0)))
                return target
        shutil.rmtree(target, ignore_errors=True)  # unrecorded: not known to be whole
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{os.getpid()}-", dir=self.root))
        try:
            fetch(tmp)
            self._write_record(key, source, _tree_bytes(tmp))
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process fetched it meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            record.unlink(missing_ok=True)
            raise
        self.prune(check_sources=False)  # keep the bound (this entry is pinned)
        return target

    def discard(self, key: str) -> None:
        """Remove the entries of `key` and of keys under it now (their owner removed the
        source)."""
        key = key.strip("/")
        for entry in self._records():
            if entry["key"] == key or str(entry["key"]).startswith(key + "/"):
                entry["_record"].unlink(missing_ok=True)
        shutil.rmtree(self.root / key, ignore_errors=True)

    # -- pruning ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self, key: str) -> Any:
        """Yield True when no process uses `key` (held exclusively meanwhile), else False."""
        lock = self._record(key).with_suffix(".lock")
        if key in self._pins:
            yield False
            return
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            yield True
        finally:
            os.close(fd)

    def _remove(self, entry: dict[str, Any]) -> bool:
        key = str(entry["key"])
        with self._exclusive(key) as free:
            if not free:
                return False
            shutil.rmtree(self.root / key, ignore_errors=True)
            entry["_record"].unlink(missing_ok=True)
            entry["_record"].with_suffix(".lock").unlink(missing_ok=True)
            return True

    def prune(self, *, check_sources: bool = True, now_ns: int | None = None) -> PruneReport:
        """Remove gone (with `check_sources`), expired, over-the-bound and unrecorded
        entries (see the module docstring); `now_ns`: the time to judge retention at."""
        report = PruneReport()
        if check_sources:
            self._last_check = time.monotonic()
        if not self.root.exists():
            return report
        now = time.time_ns() if now_ns is None else now_ns
        kept = []
        for entry in self._records():
            key = str(entry["key"])
            if not (self.root / key).exists() and key not in self._pins:
                self._remove(entry)  # its folder was removed by hand or by `discard`
                continue
            reason = None
            if self.retention_s and now - int(entry.get("used_ns", 0)) > self.retention_s * 1e9:
                reason = report.expired
            elif check_sources and entry.get("source") and key not in self._pins:
                try:
                    if not self.exists(str(entry["source"])):
                        reason = report.gone
                except Exception as exc:  # the store is away: judge it next time
                    log.warning("cannot check %s: %s", entry["source"], exc)
            if reason is not None and self._remove(entry):
                reason.append(key)
            else:
                kept.append(entry)
        total = sum(int(e.get("bytes", 0)) for e in kept)
        if self.max_bytes:
            for entry in sorted(kept, key=lambda e: int(e.get("used_ns", 0))):
                if total <= self.max_bytes:
                    break
                if self._remove(entry):
                    report.evicted.append(str(entry["key"]))
                    total -= int(entry.get("bytes", 0))
        self._sweep_locks()
        survivors = [e for e in kept if str(e["key"]) not in report.evicted]
        report.unrecorded = self._sweep_unrecorded()
        report.bytes, report.entries = total, len(survivors)
        removed = report.gone + report.expired + report.evicted + report.unrecorded
        if removed:
            log.info("cache pruned: %s; %d entries, %d bytes kept", removed, len(survivors), total)
        return report

    def check_due(self) -> bool:
        """Whether `check_interval_s` has passed since sources were last checked (or never)."""
        return not self._last_check or (
            time.monotonic() - self._last_check >= self.check_interval_s
        )

    def prune_if_due(self) -> PruneReport:
        """`prune`, checking sources when `check_due`."""
        return self.prune(check_sources=self.check_due())

    def _sweep_locks(self) -> None:
        """Remove lock files whose record is gone and that nobody holds."""
        for lock in (self.root / ENTRIES).glob("*.lock"):
            if lock.with_suffix(".json").exists():
                continue
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if not lock.with_suffix(".json").exists():
                    lock.unlink(missing_ok=True)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)

    def _sweep_unrecorded(self) -> list[str]:
        """Remove folders no record describes nor holds (an ancestor of a recorded key), and
        partial downloads of processes that are gone. A record is written before its folder
        is moved into place, so a folder seen without one is not a download finishing."""
        from app.workdirs import process_start

        removed: list[str] = []
        keys = {str(r["key"]) for r in self._records()}
        ancestors = {str(p) for k in keys for p in Path(k).parents}

        def walk(folder: Path, rel: str) -> None:
            for child in sorted(folder.iterdir()):
                name = f"{rel}/{child.name}" if rel else child.name
                if not rel and child.name == ENTRIES:
                    continue
                if not rel and child.name.startswith(PARTIAL):
                    pid = child.name[len(PARTIAL) :].split("-", 1)[0]
                    dead = pid.isdigit() and process_start(int(pid)) is None
                    if dead and int(pid) != os.getpid():
                        shutil.rmtree(child, ignore_errors=True)
                        removed.append(name)
                    continue
                if name in keys or name in self._pins or self._record(name).exists():
                    continue
                if name in ancestors and child.is_dir() and not child.is_symlink():
                    walk(child, name)
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
                removed.append(name)

        walk(self.root, "")
        return removed

    def usage(self) -> tuple[int, int]:
        """(bytes, entries) the records count."""
        records = self._records()
        return sum(int(r.get("bytes", 0)) for r in records), len(records)


_INSTANCES: weakref.WeakSet[LocalCache] = weakref.WeakSet()


def _drop_pins_in_child() -> None:
    """A forked child (a decoding process) inherits the open lock files, and a `flock` lasts
    while any copy is open: close the child's copies, so that the parent's `release` frees
    the entries."""
    for cache in list(_INSTANCES):
        for fd in cache._pins.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        cache._pins = {}
        cache._lock = threading.Lock()


os.register_at_fork(after_in_child=_drop_pins_in_child)


def _source_exists(url: str) -> bool:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return bool(fs.exists(path))
