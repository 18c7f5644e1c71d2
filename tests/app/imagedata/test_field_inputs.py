"""Inputs from the field at the library level: legacy member-name encodings, clashes after
Unicode normalisation (zip and tar), EXIF that Pillow cannot re-write, CSV dialects."""

from __future__ import annotations

import io
import re
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.imagedata import ArchiveError, extract_archive, open_dataset
from app.imagedata.decode import ExifOrientationWarning, apply_orientation, decode_image
from app.imagedata.errors import LayoutError
from app.imagedata.manifest import manifest_labels
from app.imagedata.names import guess_encoding, nfc

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "cases"

NAMES = {
    "cp866": ["кошка/0.png", "собака/1.png", "Москва/2.png"],
    "cp932": ["猫/0.png", "犬/0.png", "ラーメン/1.png", "東京/2.png"],
    "cp437": ["café/0.png", "naïve/1.png", "Éclair/2.png"],
    "cp850": ["Müller/0.png", "Straße/1.png", "Øre/2.png"],
    "cp852": ["Łódź/0.png", "Kraków/1.png"],
    "gbk": ["北京/0.png", "上海/1.png", "猫咪/2.png"],
    "cp1251": ["кошка/0.png", "собака/1.png"],
    "cp1252": ["café/0.png", "Zoë/1.png"],
}


@pytest.mark.parametrize("encoding", list(NAMES))
def test_legacy_encodings_are_recognised(encoding: str) -> None:
    raw = [n.encode(encoding) for n in NAMES[encoding]]
    guessed = guess_encoding(raw)
    assert [r.decode(guessed) for r in raw] == NAMES[encoding]


def test_utf8_without_flag_and_ascii_are_utf8() -> None:
    assert guess_encoding([n.encode() for n in NAMES["cp866"]]) == "utf-8"
    assert guess_encoding([b"cat/0.png"]) == "utf-8"


def _tar(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="cp866") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    return path


def test_tar_names_in_a_legacy_encoding_are_decoded(tmp_path: Path) -> None:
    arc = _tar(tmp_path / "a.tar", ["кошка/0.png", "собака/0.png"])
    out = extract_archive(arc, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["кошка", "собака"]


def test_tar_nfd_and_nfc_file_names_clash(tmp_path: Path) -> None:
    arc = tmp_path / "a.tar"
    with tarfile.open(arc, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("caf\u00e9/0.png", "cafe\u0301/0.png"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError, match=re.escape("duplicate entry caf\u00e9/0.png")):
        extract_archive(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_file_and_folder_clash_names_both(tmp_path: Path) -> None:
    arc = tmp_path / "a.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("a/b", b"x")
        zf.writestr("a/b/c.png", b"y")
        zf.writestr("a/b", b"z")
    with pytest.raises(ArchiveError) as info:
        extract_archive(arc, tmp_path / "out")
    assert "entry a/b is a file and also a folder (holding a/b/c.png)" in str(info.value)
    assert "duplicate entry a/b" in str(info.value)
    assert str(tmp_path) not in str(info.value)


def test_nfd_class_folders_on_disk_are_one_class(tmp_path: Path) -> None:
    for split, name in (("train", "cafe\u0301"), ("test", "caf\u00e9")):
        for cls in (name, "bar"):
            (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(2):
                Image.new("RGB", (4, 4), (i, 0, 0)).save(tmp_path / split / cls / f"{i}.png")
    layout = open_dataset(tmp_path)
    assert layout.class_names == ["bar", nfc("cafe\u0301")]
    assert layout.splits["train"].class_counts(2) == [2, 2]
    assert layout.splits["test"].class_counts(2) == [2, 2]


def _odd_exif() -> bytes:
    """The EXIF block of the field case: orientation 6 and a tag Pillow reads as NaN."""
    with zipfile.ZipFile(CASES / "exif_odd_rational.zip") as zf:
        data = zf.read("cat/0.jpg")
    with Image.open(io.BytesIO(data)) as img:
        return img.info["exif"]


def test_orientation_is_applied_when_exif_cannot_be_rewritten() -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = 255  # left half white: a rotation moves it
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", exif=_odd_exif())
    out = decode_image(buf.getvalue())
    expected = Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_270)
    assert out.size == (20, 40)
    assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_unreadable_orientation_leaves_the_image_unrotated_with_a_warning() -> None:
    class BrokenExif:
        def get(self, key: int) -> None:
            raise ValueError("bad IFD")

    img = Image.new("RGB", (6, 3))
    img.getexif = BrokenExif  # type: ignore[method-assign]
    img.info["exif"] = b"Exif\0\0garbage"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = apply_orientation(img)
    assert out.size == (6, 3)
    assert [w.category for w in caught] == [ExifOrientationWarning]


def test_labels_are_text_and_empty_labels_are_named() -> None:
    names, labels = manifest_labels(["002", "001", "10", "2"], None)
    assert names == ["001", "002", "2", "10"] and labels.tolist() == [1, 0, 3, 2]
    names, labels = manifest_labels([1, 2, 2], None)
    assert names == ["1", "2"] and labels.tolist() == [0, 1, 1]
    with pytest.raises(LayoutError, match="row 2, row 4"):
        manifest_labels(["a", "", "b", None], None)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ('\ufeffpath,label\r\n"x 1, a.png",cat\r\nx2.png,dog\r\n"x 1, a.png",cat\r\n', "utf-8"),
        ('path;label\n"x 1, a.png";cat\nx2.png;dog\n"x 1, a.png";cat\n', "cp1252"),
        ("path\tlabel\nx 1, a.png\tcat\nx2.png\tdog\nx 1, a.png\tcat\n", "utf-16"),
        ("Path | Label\nx 1, a.png | cat\nx2.png|dog\nx 1, a.png| cat\n", "utf-8"),
    ],
)
def test_csv_dialects(tmp_path: Path, text: str, encoding: str) -> None:
    for name in ("x 1, a.png", "x2.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    (tmp_path / "m.csv").write_bytes(text.encode(encoding))
    layout = open_dataset(tmp_path / "m.csv")
    assert layout.class_names == ["cat", "dog"]
    items = {i for s in ("train", "test") for i in layout.splits[s].items}
    assert items == {"x 1, a.png", "x2.png"}


def test_csv_row_with_an_unquoted_delimiter_is_named(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,label\na.png,cat\nx 1, a.png,dog\n")
    with pytest.raises(LayoutError, match=r"row 2 \(line 3\)"):
        open_dataset(tmp_path / "m.csv")
