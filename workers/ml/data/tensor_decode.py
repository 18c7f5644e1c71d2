"""Decoding for the embedding loop: one function from a dataset item to a tensor, and one
dataset that answers a DataLoader with whole batches.

Every image goes through Pillow (`app.imagedata.decode`, through the dataset's source:
EXIF orientation, alpha over white, 16-bit rescaled, the decompression-bomb limit kept,
damaged files named in a `DecodeError`), then the worker transform of the run:

* ``"cpu"`` preprocessing: the model's transform up to uint8 (resize, crop, RGB,
  ``PILToTensor``; `workers.ml.gpu_preprocess.split_for_device`), so every image of a batch
  has the same size;
* ``"device"`` preprocessing: `NATIVE` (``PILToTensor`` alone): the pixels at their own size;
  resize, crop and normalisation run batched on the model's device.

A DataLoader asks the dataset with ``__getitems__`` for a whole batch at once and gets it
assembled, ``(pixels, index, errors)``: one worker call and one transfer per batch, no
per-image tuples to collate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import transforms as tvt

from app.imagedata.errors import DecodeError
from app.imagedata.layout import ImageSource

#: The worker transform of ``"device"`` preprocessing: RGB pixels as uint8 3 x H x W.
NATIVE: Callable[[Image.Image], torch.Tensor] = tvt.PILToTensor()

Pixels = torch.Tensor | list[torch.Tensor]
Batch = tuple[Pixels, list[int], list[str]]


def decode(
    source: ImageSource, item: Any, transform: Callable[[Image.Image], torch.Tensor]
) -> torch.Tensor:
    """`transform` of item's RGB image, as Pillow decodes it through `source`.

    Returns what the transform returns (uint8 3 x H x W for `NATIVE` and the split model
    transforms). Raises `DecodeError` naming the item for missing, truncated, corrupt or
    oversized files.
    """
    return transform(source.open(item))


def passthrough(batch: Batch) -> Batch:
    """The DataLoader's collate_fn for `ImageBatches`: the batch is already assembled."""
    return batch


class ImageBatches(torch.utils.data.Dataset):
    """Items ``items`` of `source`, each `decode`-d with `transform`, served a batch at once.

    Item ``i`` is ``(tensor, i, error)``; ``error`` is "" or the `DecodeError`'s message, and
    then the tensor is zeros (the embedding loop skips or fails on it). A batch
    (``__getitems__``) is ``(pixels, index, errors)``: pixels stacked (N x C x H x W) when
    all images share a size, failed ones as zeros of the first decoded image's size; a list
    of C x H x W tensors when sizes differ (``"device"`` preprocessing of mixed sizes).
    """

    def __init__(
        self,
        source: ImageSource,
        items: Sequence[Any],
        transform: Callable[[Image.Image], torch.Tensor],
    ) -> None:
        self.source = source
        self.items = items
        self.transform = transform
        self._blank = torch.zeros_like(transform(Image.new("RGB", (8, 8))))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        try:
            return decode(self.source, self.items[index], self.transform), index, ""
        except DecodeError as exc:
            return self._blank.clone(), index, str(exc)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        images, index, errors = zip(*(self[int(i)] for i in indices), strict=True)
        good = [im for im, err in zip(images, errors, strict=True) if not err]
        shape = good[0].shape if good else self._blank.shape
        filled = [
            self._blank.new_zeros(shape) if e else im for im, e in zip(images, errors, strict=True)
        ]
        if any(im.shape != shape for im in filled):
            return filled, list(index), list(errors)
        return torch.stack(filled), list(index), list(errors)
