"""Batch-at-once decoding for the embedding DataLoader: one worker call per batch.

A DataLoader asks a dataset with ``__getitems__`` for a whole batch at once. The dataset
here answers with the batch already assembled, ``(pixels, index, errors)``, the pixels written
straight into one preallocated uint8 array: no per-image tuples to collate, and one transfer
per batch (by value when small, see `workers.ml.data.tensor_decode.BY_VALUE_BYTES`). With small
images this per-sample machinery cost more than decoding.

Pixels and error messages are exactly those of the per-image
`workers.ml.data.dataset.ImageDataset` (``"cpu"`` preprocessing):

* PNGs that `png_fast` accepts (8-bit grey/RGB/palette, no transparency or EXIF/XMP
  orientation) are decoded by torchvision's libpng decoder; PNG is lossless, so the pixels are
  Pillow's. JPEGs stay on Pillow: two libjpeg builds may round differently, and the
  ``"cpu"`` bytes must not change.
* That decoder is used only for images already at the worker transform's output size, for
  which the transform (Resize, CenterCrop, RGB conversion, PILToTensor) is skipped: each
  step returns its input unchanged there (torchvision's resize returns an image of the
  target size as is, the crop is the whole image).
* Every other image, errors included, takes the Pillow path (`app.imagedata.decode`) and
  the transform, as in the per-image dataset.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as tvt

from app.imagedata.decode import decode_image
from app.imagedata.errors import DecodeError
from app.imagedata.layout import FileSource
from workers.ml.data.dataset import ImageDataset
from workers.ml.data.tensor_decode import encoded_bytes, fast_decode, for_transfer

Batch = tuple[torch.Tensor | np.ndarray, list[int], list[str]]


def passthrough(batch: Batch) -> Batch:
    """The DataLoader's collate_fn for these datasets: the batch is already assembled."""
    return batch


def identity_size(transform: Callable) -> tuple[int, int] | None:
    """(h, w) at which `transform` (a worker transform ending in PILToTensor) leaves an RGB
    image's pixels unchanged, or None when it has a step we do not know to be a no-op there.

    Known steps: ``Resize`` (no max_size), ``CenterCrop``, conversion to RGB (open_clip's
    ``MaybeConvertMode("RGB")`` or ``_convert_to_rgb``), ``PILToTensor`` (last).
    """
    steps = list(getattr(transform, "transforms", ()))
    if not steps or not isinstance(steps[-1], tvt.PILToTensor):
        return None
    size: tuple[int, int] | None = None
    short: int | None = None
    for step in steps[:-1]:
        if isinstance(step, tvt.CenterCrop | tvt.Resize) and _pair(step.size) is not None:
            if isinstance(step, tvt.Resize) and step.max_size is not None:
                return None
            pair = _pair(step.size)
            if size is not None and pair != size:
                return None
            size = pair
        elif isinstance(step, tvt.Resize) and _short_side(step.size) is not None:
            if step.max_size is not None or short not in (None, _short_side(step.size)):
                return None
            short = _short_side(step.size)
        elif not _is_rgb_conversion(step):
            return None
    if size is None:
        size = (short, short) if short is not None else None
    elif short is not None and min(size) != short:
        return None
    return size


def _pair(size: Any) -> tuple[int, int] | None:
    """(h, w) of a CenterCrop/Resize size given as two numbers (or one for CenterCrop)."""
    if isinstance(size, list | tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


def _short_side(size: Any) -> int | None:
    if isinstance(size, int):
        return size
    if isinstance(size, list | tuple) and len(size) == 1:
        return int(size[0])
    return None


def _is_rgb_conversion(step: Any) -> bool:
    if type(step).__name__ == "MaybeConvertMode":
        return getattr(step, "mode", None) == "RGB"
    return getattr(step, "__name__", None) == "_convert_to_rgb"


class BatchedImageDataset(ImageDataset):
    """`ImageDataset` whose ``__getitems__`` returns a whole batch (``"cpu"`` preprocessing):
    ``(uint8 N x 3 x h x w, index, errors)``, failed images as zeros."""

    def __init__(
        self,
        source: Any,
        items: Sequence[Any],
        preprocess: Callable[[Image.Image], torch.Tensor],
    ) -> None:
        super().__init__(source, items, preprocess)
        self.identity = identity_size(preprocess) if self._blank.dtype == torch.uint8 else None

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        out = torch.empty((len(indices), *self._blank.shape), dtype=self._blank.dtype)
        rows = out.numpy()  # numpy item assignment costs a third of torch's per image
        errors = [self._decode_into(rows, k, self.items[index]) for k, index in enumerate(indices)]
        return for_transfer(out), [int(i) for i in indices], errors

    def _decode_into(self, rows: np.ndarray, k: int, item: Any) -> str:
        """Write item's preprocessed pixels (zeros if undecodable) to ``rows[k]``; the error."""
        data = encoded_bytes(self.source, item) if self.identity is not None else None
        if data is not None and _png_size(data) == self.identity:
            pixels = fast_decode(data, jpeg=False)
            if pixels is not None:
                rows[k] = pixels.numpy()
                return ""
        try:  # anything else: Pillow decodes, the transform resizes and crops
            image = (
                decode_image(data, name=self.source.describe(item))  # as FileSource.open
                if data is not None and isinstance(self.source, FileSource)
                else self.source.open(item)
            )
        except DecodeError as exc:
            rows[k] = 0
            return str(exc)
        rows[k] = self.preprocess(image).numpy()
        return ""


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(h, w) from a PNG header (unchecked: `fast_decode` checks the file), or None."""
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    width, height = struct.unpack(">II", data[16:24])
    return height, width
