"""Safe extraction of zip and tar(.gz/.bz2/.xz) archives of image datasets.

Every entry is checked before a byte is written: no absolute paths, no ``..`` components, no
links or device files, at most ``max_entries`` entries, at most ``max_total_bytes`` bytes
once uncompressed and at most ``max_ratio`` times the archive's size (a zip bomb's signature).
Sizes are counted while streaming, never trusted from headers.
"""

from __future__ import annotations

import lzma
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from app.imagedata.errors import ArchiveError, ArchiveTooLargeError
from app.imagedata.names import decode_names, zip_raw_name, zip_unicode_path

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
    archive: str | Path,
    dest: str | Path,
    *,
    limits: ArchiveLimits | None = None,
    name_encoding: str | None = None,
) -> Path:
    """Extract `archive` into `dest` (created; must be empty) after checking every entry.

    Member names are decoded as the archive declares (or as :mod:`app.imagedata.names`
    guesses; `name_encoding` overrides it for names without a declared encoding) and written
    in Unicode NFC. Entries that clash once decoded and normalised (the same name twice, a
    file and a folder with one path) are refused, all named in one ArchiveError. On any
    violation nothing is left in `dest`; messages name entries, never server paths.
    """
    archive, dest = Path(archive), Path(dest)
    limits = limits or ArchiveLimits()
    if not archive.is_file():
        raise ArchiveError(f"archive not found: {archive.name}")
    if dest.exists() and any(dest.iterdir()):
        raise ArchiveError(f"extraction directory is not empty: {dest.name}")
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits, archive.stat().st_size)
    kind = archive_kind(archive)
    try:
        if kind == "zip":
            if not zipfile.is_zipfile(archive):
                raise ArchiveError(_unreadable(archive, kind))
            _extract_zip(archive, dest, budget, name_encoding)
        else:
            _extract_tar(archive, dest, budget, name_encoding, kind)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


_MAGIC = ((b"PK", "zip"), (b"\x1f\x8b", "tar.gz"), (b"BZh", "tar.bz2"),
          (b"\xfd7zXZ\x00", "tar.xz"))  # fmt: skip
_SUFFIX_KIND = {".zip": "zip", ".tar": "tar", ".tar.gz": "tar.gz", ".tgz": "tar.gz",
                ".tar.bz2": "tar.bz2", ".tbz2": "tar.bz2", ".tar.xz": "tar.xz",
                ".txz": "tar.xz"}  # fmt: skip
_TAR_MODE = {"tar": "r:", "tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz"}


def archive_kind(path: Path) -> str:
    """ "zip", "tar", "tar.gz", "tar.bz2" or "tar.xz": by the file's first bytes (its magic
    number; a plain tar has ``ustar`` at byte 257), else by its name's suffix, else "zip"."""
    with open(path, "rb") as fh:
        head = fh.read(265)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    name = path.name.lower()
    for suffix, kind in sorted(_SUFFIX_KIND.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return kind
    return "zip"


def _unreadable(archive: Path, kind: str) -> str:
    return (f"{archive.name} is not a readable {kind} archive (truncated or corrupt?): "
            "re-create it (zip, tar, tar.gz, tar.bz2 or tar.xz)")  # fmt: skip


def check_clashes(names: list[str], is_dir: list[bool]) -> None:
    """ArchiveError naming every clash among decoded, NFC-normalised entry names.

    A clash is a file name held twice (byte-equal, or equal once normalised: NFD and NFC
    spellings) or a path that is both a file and a folder (``dog`` and ``dog/0.png``).
    """
    files: dict[str, int] = {}
    folders: dict[str, str] = {}
    problems: list[str] = []
    for name, d in zip(names, is_dir, strict=True):
        path = PurePosixPath(name.replace("\\", "/")).as_posix().strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + (1 if d else 0)):
            folder = "/".join(parts[:i])  # value: the first file inside it, if any
            if not folders.get(folder):
                folders[folder] = "" if d else path
        if not d:
            files[path] = files.get(path, 0) + 1
    for path, count in files.items():
        if count > 1:
            problems.append(f"duplicate entry {path} ({count} entries have this name once "
                            "decoded and Unicode-normalised)")  # fmt: skip
        if path in folders:
            inside = folders[path]
            problems.append(f"entry {path} is a file and also a folder"
                            + (f" (holding {inside})" if inside else "")
                            + ": rename one of them")  # fmt: skip
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ArchiveError("archive entries clash: " + "; ".join(problems[:10]) + more)


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
            raise ArchiveTooLargeError(
                f"archive has more than {self.limits.max_entries} entries", "entries"
            )

    def add(self, n: int, name: str) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            ratio = self.max_bytes < self.limits.max_total_bytes
            raise ArchiveTooLargeError(
                f"archive expands past {self.max_bytes} bytes at {name!r} (limits: "
                f"{self.limits.max_total_bytes} bytes, {self.limits.max_ratio}x the archive size)",
                "ratio" if ratio else "bytes",
            )


def safe_member_path(name: str, dest: Path) -> Path:
    """The path `name` extracts to under `dest`; ArchiveError if it could escape."""
    posix = name.replace("\\", "/")  # Windows separators: "\\\\server\\x" is "//server/x"
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):  # POSIX, UNC, drive
        raise ArchiveError(
            f"archive entry has an absolute path: {name!r}; entries must be relative "
            "(class/image.png): re-create the archive from inside the dataset's folder"
        )
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


def _zip_names(infos: list[zipfile.ZipInfo], encoding: str | None) -> list[str]:
    raw: list[bytes | None] = []
    given: list[str] = []
    for info in infos:
        name_raw = zip_raw_name(info)
        unicode_path = zip_unicode_path(info, name_raw) if name_raw is not None else None
        declared = name_raw is None or unicode_path is not None
        raw.append(None if declared else name_raw)
        given.append(unicode_path or info.filename)
    return decode_names(raw, given, encoding)


def _extract_zip(archive: Path, dest: Path, budget: _Budget, encoding: str | None) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > budget.limits.max_entries:
            raise ArchiveTooLargeError(
                f"archive has more than {budget.limits.max_entries} entries", "entries"
            )
        names = _zip_names(infos, encoding)
        check_clashes(names, [i.is_dir() for i in infos])
        for info, name in zip(infos, names, strict=True):
            budget.entry(name)
            target = safe_member_path(name, dest)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ArchiveError(f"archive entry is a link, which is not allowed: {name!r}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            try:
                with zf.open(info) as src:
                    _copy(src, target, name, budget)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise ArchiveError(f"corrupt archive entry {name!r}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """An exception's reason without the file name a system error carries (a server path)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _tar_names(members: list[tarfile.TarInfo], encoding: str | None) -> list[str]:
    # tarfile decodes names as UTF-8 with surrogateescape: surrogates mark undeclared bytes.
    raw: list[bytes | None] = []
    for m in members:
        b = m.name.encode("utf-8", "surrogateescape")
        raw.append(None if b.decode("utf-8", "ignore") == m.name else b)
    return decode_names(raw, [m.name for m in members], encoding)


def _check_tar_member(member: tarfile.TarInfo, name: str, dest: Path) -> None:
    if member.issym() or member.islnk():
        where = safe_link_target(member, dest)
        raise ArchiveError(f"archive entry {name!r} is a link{where}, which is not allowed")
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"archive entry is not a regular file: {name!r}")


def safe_link_target(member: tarfile.TarInfo, dest: Path) -> str:
    """A phrase saying whether a tar link's target escapes `dest` (for the error message)."""
    base = dest / PurePosixPath(member.name).parent if member.issym() else dest
    resolved = (base / member.linkname).resolve()
    return "" if resolved.is_relative_to(dest.resolve()) else " escaping the extraction directory"


def _tar_headers(tf: tarfile.TarFile, limit: int) -> list[tarfile.TarInfo]:
    members = []
    for member in tf:
        members.append(member)
        if len(members) > limit:
            raise ArchiveTooLargeError(f"archive has more than {limit} entries", "entries")
    return members


def _extract_tar(
    archive: Path, dest: Path, budget: _Budget, encoding: str | None, kind: str = "tar"
) -> None:
    try:
        tf = tarfile.open(archive, mode=_TAR_MODE[kind], errors="surrogateescape")  # noqa: SIM115
    except (tarfile.TarError, EOFError, OSError):
        raise ArchiveError(_unreadable(archive, kind)) from None
    try:
        with tf:
            members = _tar_headers(tf, budget.limits.max_entries)
            names = _tar_names(members, encoding)
            for member, name in zip(members, names, strict=True):
                safe_member_path(name, dest)
                _check_tar_member(member, name, dest)
            check_clashes(names, [m.isdir() for m in members])
            for member, name in zip(members, names, strict=True):
                budget.entry(name)
                target = safe_member_path(name, dest)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                src = tf.extractfile(member)
                if src is not None:
                    _copy(src, target, name, budget)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError):
        raise ArchiveError(_unreadable(archive, kind)) from None
    except OSError as exc:
        raise ArchiveError(f"cannot read archive {archive.name}: {_reason(exc)}") from None
