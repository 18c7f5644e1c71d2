"""Worker-side decoding for device preprocessing: images to uint8 RGB CHW tensors at their
native resolution, and a collate that stacks same-size batches.

Fast path: ``torchvision.io.decode_image`` on the file bytes, only for files whose header
shows nothing the project's robust decoder (`app.imagedata.decode`) would treat differently:
well-formed 8-bit grey/RGB or opaque palette PNGs without transparency or orientation
metadata (`png_fast`); 8-bit JPEGs with 1 or 3 components that end with an EOI marker (EXIF
orientation applied by torchvision).
Everything else (alpha, 16-bit, CMYK, other formats, images over Pillow's
decompression-bomb limit, anything the fast decoder rejects) goes through the Pillow path,
so the robustness guarantees and DecodeError messages are the same as with ``"cpu"``.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.imagedata.errors import DecodeError
from app.imagedata.layout import FileSource, ImageSource
from app.imagedata.manifest import ParquetBytesSource

_PNG = b"\x89PNG\r\n\x1a\n"
_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})
# Text keywords Pillow reads an orientation from (Image.getexif): EXIF as hex, and XMP.
_ORIENTATION_KEYS = (b"Raw profile type", b"XML:com.adobe.xmp\x00")
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


# A worker returns a tensor through shared memory: per tensor a new file descriptor, sent
# over a fresh authenticated connection to the worker's resource sharer, about 1 ms of CPU
# in each process. Small batches (the tiny model's: 96 KiB at 32 px x 32 images) cost less
# copied through the worker's pipe as a numpy array; the loop wraps them with from_numpy.
BY_VALUE_BYTES = 1 << 20


def for_transfer(pixels: torch.Tensor) -> torch.Tensor | np.ndarray:
    """A worker's batch as it should travel: a numpy array (pickled by value) when small and
    in a DataLoader worker, else the tensor (shared memory). See `BY_VALUE_BYTES`."""
    if torch.utils.data.get_worker_info() is not None and pixels.nbytes <= BY_VALUE_BYTES:
        return pixels.numpy()
    return pixels


def png_fast(data: bytes) -> bool:
    """True for a well-formed 8-bit grey/RGB (or palette) PNG that Pillow's decode and
    `to_rgb` would not treat differently from libpng's: within the size limit, every chunk's
    CRC correct up to IEND, no tRNS, and no orientation Pillow would apply (an eXIf chunk, or
    a text chunk holding EXIF or XMP, before or after the image data)."""
    if len(data) < 33 or not data.startswith(_PNG) or data[12:16] != b"IHDR":
        return False
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if not _within_limit(width, height) or colour not in (0, 2, 3):
        return False
    if colour != 3 and depth != 8:
        return False
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data) or kind in (b"tRNS", b"eXIf"):
            return False
        if kind in _TEXT and data[pos + 8 : end].startswith(_ORIENTATION_KEYS):
            return False
        if zlib.crc32(data[pos + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            return False
        if kind == b"IEND":
            return True
        pos = end + 4
    return False


def jpeg_fast(data: bytes) -> bool:
    """True for a complete 8-bit JPEG with 1 or 3 components (not CMYK), within limits."""
    if not data.startswith(b"\xff\xd8") or not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return False
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in _SOF:
            if pos + 10 > len(data):
                return False
            precision, height, width, comps = struct.unpack(">BHHB", data[pos + 4 : pos + 10])
            return precision == 8 and comps in (1, 3) and _within_limit(width, height)
        if marker == 0xDA:  # start of scan before any frame header
            return False
        pos += 2 + length
    return False


def _within_limit(width: int, height: int) -> bool:
    limit = Image.MAX_IMAGE_PIXELS
    return width > 0 and height > 0 and (limit is None or width * height <= limit)


def fast_decode(data: bytes, *, jpeg: bool = True) -> torch.Tensor | None:
    """uint8 3 x H x W from `data` by torchvision's decoders, or None (use Pillow).

    PNGs decode to exactly Pillow's pixels; JPEGs (only with ``jpeg=True``) to within the
    rounding of two libjpeg-turbo builds.
    """
    from torchvision.io import ImageReadMode, decode_image

    is_jpeg = jpeg and jpeg_fast(data)
    if not (is_jpeg or png_fast(data)):
        return None
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (TorchCodec)
            warnings.simplefilter("ignore", DeprecationWarning)
            image = decode_image(raw, mode=ImageReadMode.RGB, apply_exif_orientation=is_jpeg)
    except (RuntimeError, ValueError):
        return None  # Pillow decides: it decodes the file or names the error
    return image if image.dtype == torch.uint8 and image.shape[0] == 3 else None


def encoded_bytes(source: ImageSource, item: Any) -> bytes | None:
    """The encoded file bytes of `item` when the source stores them, else None."""
    try:
        if isinstance(source, FileSource):
            with open(os.path.join(source.root, item), "rb") as file:
                return file.read()
        if isinstance(source, ParquetBytesSource):
            value = source._column()[int(item)].as_py()
            data = value.get("bytes") if isinstance(value, dict) else value
            return bytes(data) if isinstance(data, bytes | bytearray) else None
    except OSError:
        return None  # Pillow's path reports missing or unreadable files
    return None


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB Pillow image as uint8 3 x H x W."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)


class NativeImageDataset(torch.utils.data.Dataset):
    """Item ``i`` is ``(uint8 3xHxW image_i at native size, i, error)``; ``error`` is "" or a
    DecodeError's message, in which case the tensor is a placeholder the collate resizes."""

    def __init__(self, source: ImageSource, items: Sequence[Any]) -> None:
        self.source = source
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        item = self.items[index]
        data = encoded_bytes(self.source, item)
        image = fast_decode(data) if data is not None else None
        if image is not None:
            return image, index, ""
        try:
            return pil_to_tensor(self.source.open(item)), index, ""
        except DecodeError as exc:
            return torch.zeros(3, 1, 1, dtype=torch.uint8), index, str(exc)

    def __getitems__(self, indices: Sequence[int]) -> tuple[Any, list[int], list[str]]:
        """A whole batch, as one worker call: ``(pixels, index, errors)`` with the pixels
        stacked by `collate_native` (a list when sizes differ), small batches by value."""
        pixels, _, errors = collate_native([self[i] for i in indices])
        if isinstance(pixels, torch.Tensor):
            pixels = for_transfer(pixels)
        return pixels, [int(i) for i in indices], errors


def collate_native(
    batch: Sequence[tuple[torch.Tensor, int, str]],
) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor, list[str]]:
    """Stack a batch whose images share a size (a list otherwise); failed images become
    zeros of the first good image's size so they do not break the stack."""
    images, index, errors = zip(*batch, strict=True)
    good = [im for im, err in zip(images, errors, strict=True) if not err]
    shape = good[0].shape if good else (3, 8, 8)
    images = [
        torch.zeros(shape, dtype=torch.uint8) if e else im
        for im, e in zip(images, errors, strict=True)
    ]
    same = all(im.shape == images[0].shape for im in images)
    pixels = torch.stack(images) if same else list(images)
    return pixels, torch.tensor(index, dtype=torch.int64), list(errors)
