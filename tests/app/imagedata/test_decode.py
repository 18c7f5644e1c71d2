"""Decoding of every odd image mode to RGB; corrupt, truncated and oversized files rejected."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.imagedata import DecodeError, decode_image


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_grayscale_becomes_three_equal_channels() -> None:
    img = Image.fromarray(np.full((4, 5), 77, dtype=np.uint8))
    out = decode_image(_encode(img, "PNG"))
    assert out.mode == "RGB" and out.size == (5, 4)
    assert np.all(np.asarray(out) == 77)


def test_sixteen_bit_png_is_rescaled_not_clipped() -> None:
    arr = np.array([[0, 65535], [257 * 100, 257 * 200]], dtype=np.uint16)
    img = Image.fromarray(arr)
    out = np.asarray(decode_image(_encode(img, "PNG")))
    assert out.shape == (2, 2, 3)
    assert out[:, :, 0].tolist() == [[0, 255], [100, 200]]


def test_float_tiff_in_unit_range_is_scaled() -> None:
    img = Image.fromarray(np.array([[0.0, 1.0], [0.5, 0.25]], dtype=np.float32))
    out = np.asarray(decode_image(_encode(img, "TIFF")))
    assert out[:, :, 1].tolist() == [[0, 255], [128, 64]]


def test_palette_with_transparency_composites_on_white() -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    out = np.asarray(decode_image(_encode(img, "PNG", transparency=0)))
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert out[0, 1].tolist() == [0, 0, 255]


def test_rgba_alpha_is_composited_over_white() -> None:
    arr = np.zeros((1, 2, 4), dtype=np.uint8)
    arr[0, 0] = [0, 0, 0, 0]  # fully transparent black
    arr[0, 1] = [200, 10, 10, 255]
    out = np.asarray(decode_image(_encode(Image.fromarray(arr, "RGBA"), "PNG")))
    assert out[0].tolist() == [[255, 255, 255], [200, 10, 10]]


def test_la_and_bilevel_and_cmyk_convert() -> None:
    la = Image.fromarray(
        np.dstack([np.full((2, 2), 50, np.uint8), np.full((2, 2), 255, np.uint8)]), "LA"
    )
    assert np.all(np.asarray(decode_image(_encode(la, "PNG"))) == 50)
    bilevel = Image.new("1", (3, 3), 1)
    assert np.all(np.asarray(decode_image(_encode(bilevel, "PNG"))) == 255)
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    out = np.asarray(decode_image(_encode(cmyk, "JPEG", quality=100)))
    assert out.shape == (4, 4, 3)
    assert out[..., 0].min() > 200 and out[..., 1].max() < 60


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (4, 2), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    out = decode_image(_encode(img, "JPEG", exif=exif))
    assert out.size == (2, 4)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "not an image"), (b"hello, not an image", "not an image")],
)
def test_non_images_are_named(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "cat" / "bad.png"
    path.parent.mkdir()
    path.write_bytes(data)
    with pytest.raises(DecodeError, match=reason) as err:
        decode_image(path, name="cat/bad.png")
    assert err.value.name == "cat/bad.png"


def test_truncated_png_is_an_error_naming_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = _encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    path = tmp_path / "trunc.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="corrupt or truncated") as err:
        decode_image(path)
    assert "trunc.png" in str(err.value)


def test_decompression_bomb_limit_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(Image.new("L", (64, 64)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64*64 = 4096 > 1000
    with pytest.raises(DecodeError, match="decompression-bomb"):
        decode_image(data, name="big.png")
    assert Image.MAX_IMAGE_PIXELS == 1000  # decode_image does not lift the limit


def test_decode_error_pickles_for_worker_processes() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(DecodeError("a.png", "broken")))
    assert (err.name, err.reason) == ("a.png", "broken")
