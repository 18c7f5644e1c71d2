"""Archive extraction: good zip/tar extract; every attack is rejected and leaves nothing."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from app.imagedata import ArchiveError, ArchiveLimits, extract_archive


def _zip(path: Path, entries: dict[str, bytes], *, compress: bool = False) -> Path:
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, entries: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _tar_link(path: Path, name: str, target: str, *, hard: bool = False) -> Path:
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = target
        tf.addfile(info)
    return path


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_variants_extract(tmp_path: Path, mode: str) -> None:
    arc = _tar(tmp_path / "a.tar", {"cls/a.png": b"x" * 10, "cls/b.png": b"y"}, mode)
    out = extract_archive(arc, tmp_path / "out")
    assert (out / "cls" / "a.png").read_bytes() == b"x" * 10
    assert (out / "cls" / "b.png").read_bytes() == b"y"


def test_zip_extracts(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", {"train/cls/a.png": b"abc", "train/": b""})
    out = extract_archive(arc, tmp_path / "out")
    assert (out / "train" / "cls" / "a.png").read_bytes() == b"abc"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.png", "escapes"),
        ("a/../../evil.png", "escapes"),
        ("/etc/evil.png", "absolute"),
        ("C:/evil.png", "absolute"),
        ("..\\evil.png", "escapes"),
    ],
)
def test_zip_slip_and_absolute_paths_rejected(tmp_path: Path, name: str, message: str) -> None:
    arc = _zip(tmp_path / "a.zip", {"ok/a.png": b"1", name: b"2"})
    with pytest.raises(ArchiveError, match=message):
        extract_archive(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.png").exists()


ABSOLUTE = ["/tmp/newcomer13/abs.png", "C:\\x.png", "C:/x.png", "C:x.png",
            "\\\\server\\share\\x.png", "//server/share/x.png", "\\x.png"]  # fmt: skip


@pytest.mark.parametrize("name", ABSOLUTE)
@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_absolute_and_drive_paths_rejected_naming_the_member(
    tmp_path: Path, kind: str, name: str
) -> None:
    """POSIX absolute, Windows drive (with or without a slash) and UNC member names are
    refused like ``..``, the message naming the member as stored; nothing is extracted."""
    entries = {"ok/a.png": b"1", name: b"2"}
    arc = (
        _zip(tmp_path / "a.zip", entries)
        if kind == "zip"
        else _tar(tmp_path / f"a.{kind}", entries, "w:gz" if kind == "tar.gz" else "w")
    )
    with pytest.raises(ArchiveError, match="absolute path") as caught:
        extract_archive(arc, tmp_path / "out")
    assert repr(name) in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_tar_slip_rejected(tmp_path: Path) -> None:
    arc = _tar(tmp_path / "a.tar", {"../../evil.png": b"2"})
    with pytest.raises(ArchiveError, match="escapes"):
        extract_archive(arc, tmp_path / "out")


def test_tar_symlink_escaping_rejected(tmp_path: Path) -> None:
    arc = _tar_link(tmp_path / "a.tar", "cls/link.png", "../../../etc/passwd")
    with pytest.raises(ArchiveError, match="escaping the extraction directory"):
        extract_archive(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("hard", [False, True])
def test_tar_links_inside_are_refused_too(tmp_path: Path, hard: bool) -> None:
    arc = _tar_link(tmp_path / "a.tar", "cls/link.png", "cls/a.png", hard=hard)
    with pytest.raises(ArchiveError, match="is a link"):
        extract_archive(arc, tmp_path / "out")


def test_zip_symlink_rejected(tmp_path: Path) -> None:
    arc = tmp_path / "a.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        info = zipfile.ZipInfo("cls/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="link"):
        extract_archive(arc, tmp_path / "out")


def test_too_many_entries_rejected(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", {f"c/{i}.png": b"x" for i in range(11)})
    with pytest.raises(ArchiveError, match="more than 10 entries"):
        extract_archive(arc, tmp_path / "out", limits=ArchiveLimits(max_entries=10))
    extract_archive(arc, tmp_path / "ok", limits=ArchiveLimits(max_entries=11))


def test_zip_bomb_ratio_rejected(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "bomb.zip", {"c/zeros.png": bytes(5_000_000)}, compress=True)
    assert arc.stat().st_size < 20_000
    with pytest.raises(ArchiveError, match="x the archive size"):
        extract_archive(arc, tmp_path / "out", limits=ArchiveLimits(max_ratio=100))
    assert not (tmp_path / "out").exists()


def test_tar_gz_bomb_ratio_rejected(tmp_path: Path) -> None:
    arc = _tar(tmp_path / "bomb.tar.gz", {"c/zeros.png": bytes(5_000_000)}, "w:gz")
    with pytest.raises(ArchiveError, match="expands past"):
        extract_archive(arc, tmp_path / "out", limits=ArchiveLimits(max_ratio=100))


def test_total_size_limit(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", {"c/a.png": b"x" * 1000, "c/b.png": b"x" * 1000})
    with pytest.raises(ArchiveError, match="expands past 1500 bytes"):
        extract_archive(arc, tmp_path / "out", limits=ArchiveLimits(max_total_bytes=1500))


def test_device_files_and_fifos_rejected(tmp_path: Path) -> None:
    arc = tmp_path / "a.tar"
    with tarfile.open(arc, "w") as tf:
        info = tarfile.TarInfo("c/fifo")
        info.type = tarfile.FIFOTYPE
        tf.addfile(info)
    with pytest.raises(ArchiveError, match="not a regular file"):
        extract_archive(arc, tmp_path / "out")


def test_garbage_and_nonempty_destination(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not an archive at all" * 100)
    with pytest.raises(ArchiveError, match="not a readable"):
        extract_archive(junk, tmp_path / "out")
    good = _zip(tmp_path / "a.zip", {"c/a.png": b"1"})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ArchiveError, match="not empty"):
        extract_archive(good, tmp_path / "full")


@pytest.mark.parametrize(
    ("suffix", "mode", "kind"),
    [(".zip", None, "zip"), (".tar", "w", "tar"), (".tar.gz", "w:gz", "tar.gz"),
     (".tar.bz2", "w:bz2", "tar.bz2"), (".tar.xz", "w:xz", "tar.xz")],
)  # fmt: skip
def test_truncated_archive_names_its_own_kind(
    tmp_path: Path, suffix: str, mode: str | None, kind: str
) -> None:
    """A cut archive is reported as that kind (by its magic number and name), without
    tarfile's list of every method it tried; nothing is left in the destination."""
    entries = {f"c/{i}.png": bytes(range(256)) * 40 for i in range(8)}
    full = tmp_path / f"full{suffix}"
    _zip(full, entries, compress=True) if mode is None else _tar(full, entries, mode)
    cut = tmp_path / f"upload{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ArchiveError) as caught:
        extract_archive(cut, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"upload{suffix} is not a readable {kind} archive"), message
    assert "truncated or corrupt" in message and "method" not in message
    assert not (tmp_path / "out").exists()


def test_archive_kind_by_magic_then_name(tmp_path: Path) -> None:
    from app.imagedata.archive import archive_kind

    tgz = _tar(tmp_path / "named.zip", {"c/a.png": b"1"}, "w:gz")  # a tar.gz called .zip
    assert archive_kind(tgz) == "tar.gz"
    assert archive_kind(_tar(tmp_path / "plain.bin", {"c/a.png": b"1"})) == "tar"
    junk = tmp_path / "junk.tar.xz"
    junk.write_bytes(b"hello")
    assert archive_kind(junk) == "tar.xz"


def test_too_large_errors_name_the_limit(tmp_path: Path) -> None:
    from app.imagedata.errors import ArchiveTooLargeError

    bomb = _zip(tmp_path / "bomb.zip", {"c/zeros.png": bytes(5_000_000)}, compress=True)
    with pytest.raises(ArchiveTooLargeError) as caught:
        extract_archive(bomb, tmp_path / "o1", limits=ArchiveLimits(max_ratio=100))
    assert caught.value.limit == "ratio"
    with pytest.raises(ArchiveTooLargeError) as caught:
        extract_archive(bomb, tmp_path / "o2", limits=ArchiveLimits(max_total_bytes=1000))
    assert caught.value.limit == "bytes"
    many = _zip(tmp_path / "many.zip", {f"c/{i}.png": b"x" for i in range(5)})
    with pytest.raises(ArchiveTooLargeError) as caught:
        extract_archive(many, tmp_path / "o3", limits=ArchiveLimits(max_entries=2))
    assert caught.value.limit == "entries"
