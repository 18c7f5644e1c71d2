"""Safe extraction of zip and tar(.gz/.bz2/.xz) archives of image datasets.

Every entry is checked before a byte is written: no absolute paths, no ``..`` components, no
links or device files, at most ``max_entries`` entries, at most ``max_total_bytes`` bytes
once uncompressed and at most ``max_ratio`` times the archive's size (a zip bomb's signature).
Sizes are counted while streaming, never trusted from headers.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from app.imagedata.errors import ArchiveError

_CHUNK = 1 << 20
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds an uploaded archive must respect."""

    max_entries: int = 2_000_000
    max_total_bytes: int = 64 * 1024**3
    max_ratio: float = 200.0


def is_archive(path: str | Path) -> bool:
    """True when `path` has an archive suffix this module extracts."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(
    archive: str | Path, dest: str | Path, *, limits: ArchiveLimits | None = None
) -> Path:
    """Extract `archive` into `dest` (created; must be empty) after checking every entry.

    On any violation nothing is left in `dest` and ArchiveError names the offending entry.
    """
    archive, dest = Path(archive), Path(dest)
    limits = limits or ArchiveLimits()
    if not archive.is_file():
        raise ArchiveError(f"archive not found: {archive}")
    if dest.exists() and any(dest.iterdir()):
        raise ArchiveError(f"extraction directory is not empty: {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits, archive.stat().st_size)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest, budget)
        else:
            _extract_tar(archive, dest, budget)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


class _Budget:
    """Counts entries and bytes against the limits."""

    def __init__(self, limits: ArchiveLimits, archive_size: int) -> None:
        self.limits = limits
        self.entries = 0
        self.bytes = 0
        self.max_bytes = min(limits.max_total_bytes, int(limits.max_ratio * max(archive_size, 1)))

    def entry(self, name: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ArchiveError(f"archive has more than {self.limits.max_entries} entries")

    def add(self, n: int, name: str) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise ArchiveError(
                f"archive expands past {self.max_bytes} bytes at {name!r} (limits: "
                f"{self.limits.max_total_bytes} bytes, {self.limits.max_ratio}x the archive size)"
            )


def safe_member_path(name: str, dest: Path) -> Path:
    """The path `name` extracts to under `dest`; ArchiveError if it could escape."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise ArchiveError(f"archive entry has an absolute path: {name!r}")
    parts = PurePosixPath(posix).parts
    if ".." in parts:
        raise ArchiveError(f"archive entry escapes the extraction directory: {name!r}")
    target = dest.joinpath(*parts).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise ArchiveError(f"archive entry escapes the extraction directory: {name!r}")
    return target


def _copy(src: IO[bytes], target: Path, name: str, budget: _Budget) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:
        while chunk := src.read(_CHUNK):
            budget.add(len(chunk), name)
            out.write(chunk)


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            budget.entry(info.filename)
            target = safe_member_path(info.filename, dest)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ArchiveError(
                    f"archive entry is a link, which is not allowed: {info.filename!r}"
                )
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            try:
                with zf.open(info) as src:
                    _copy(src, target, info.filename, budget)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ArchiveError(f"corrupt archive entry {info.filename!r}: {exc}") from None


def _tar_members(tf: tarfile.TarFile, dest: Path) -> Iterator[tuple[tarfile.TarInfo, Path]]:
    for member in tf:
        target = safe_member_path(member.name, dest)
        if member.issym() or member.islnk():
            where = safe_link_target(member, dest)
            raise ArchiveError(
                f"archive entry {member.name!r} is a link{where}, which is not allowed"
            )
        if not (member.isfile() or member.isdir()):
            raise ArchiveError(f"archive entry is not a regular file: {member.name!r}")
        yield member, target


def safe_link_target(member: tarfile.TarInfo, dest: Path) -> str:
    """A phrase saying whether a tar link's target escapes `dest` (for the error message)."""
    base = dest / PurePosixPath(member.name).parent if member.issym() else dest
    resolved = (base / member.linkname).resolve()
    return "" if resolved.is_relative_to(dest.resolve()) else " escaping the extraction directory"


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    try:
        with tarfile.open(archive, mode="r:*") as tf:
            for member, target in _tar_members(tf, dest):
                budget.entry(member.name)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                src = tf.extractfile(member)
                if src is not None:
                    _copy(src, target, member.name, budget)
    except tarfile.TarError as exc:
        raise ArchiveError(f"not a readable zip or tar archive: {archive.name} ({exc})") from None
    except EOFError:
        raise ArchiveError(f"archive is truncated: {archive.name}") from None
