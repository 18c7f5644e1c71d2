"""Robust image decoding: any Pillow-readable file to an 8-bit RGB image.

Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is kept: oversized images are
rejected, not decoded. Truncated files are errors (``ImageFile.LOAD_TRUNCATED_IMAGES`` is left
False), so a damaged dataset is reported by file name instead of silently embedded.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.imagedata.errors import DecodeError

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_BACKGROUND = (255, 255, 255)
_ORIENTATION = 0x0112
#: EXIF orientation -> the transpose that shows the image upright (as Pillow's exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ExifOrientationWarning(UserWarning):
    """An image's EXIF orientation could not be read, so it is used as stored (unrotated)."""


def decode_image(source: str | Path | bytes, *, name: str | None = None) -> Image.Image:
    """Open and fully decode `source` (a path or encoded bytes) as an RGB image.

    Raises DecodeError naming the file for non-images, truncated or corrupt data and images
    over Pillow's decompression-bomb limit.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, bytes) else source
            with Image.open(fp) as img:
                img.load()
                return to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(label, f"decompression-bomb limit exceeded ({exc})") from None
    except UnidentifiedImageError:
        raise DecodeError(label, "not an image file Pillow can identify") from None
    except FileNotFoundError:
        raise DecodeError(label, "file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(label, f"corrupt or truncated ({exc})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a decoded image of any mode to 8-bit RGB.

    EXIF orientation is applied; alpha is composited over white (so transparent pixels do not
    show whatever colour they happen to store); 16-bit and float images are rescaled to 8 bits.
    """
    img = apply_orientation(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in _HIGH_DEPTH_MODES:
        img = _to_8bit(img)
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if img.mode == "RGB":
        return img
    if img.mode == "1":
        img = img.convert("L")
    return img.convert("RGB")


def apply_orientation(img: Image.Image) -> Image.Image:
    """`img` turned upright by its EXIF orientation.

    Pillow's ``exif_transpose`` re-writes the EXIF block, which fails on tags Pillow reads but
    cannot write back (a rational 1/0, say); then the orientation tag alone is applied with a
    plain transpose. When even that tag cannot be read, the image is used as stored and an
    :class:`ExifOrientationWarning` says so.
    """
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # any EXIF Pillow cannot re-write: apply the tag alone
        pass
    try:
        orientation = img.getexif().get(_ORIENTATION)
    except Exception as exc:  # unreadable EXIF: use the pixels as stored
        warnings.warn(f"EXIF orientation unreadable ({exc})", ExifOrientationWarning, 2)
        return img
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return img.transpose(method) if method is not None else img


def _to_8bit(img: Image.Image) -> Image.Image:
    """Rescale a 16/32-bit integer or float single-channel image to mode "L"."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float64)
        top = 1.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 255.0
        out = np.clip(np.nan_to_num(arr) / top * 255.0, 0, 255)
    else:
        arr = arr.astype(np.int64)
        # 16-bit data (PNG/TIFF) maps 0..65535 to 0..255; a 32-bit "I" image holding 8-bit
        # values (some PNG readers produce these) is kept as is.
        sixteen = img.mode.startswith("I;16") or arr.max(initial=0) > 255
        out = np.clip(arr, 0, 65535) / 257.0 if sixteen else np.clip(arr, 0, 255)
    return Image.fromarray(np.rint(out).astype(np.uint8))
