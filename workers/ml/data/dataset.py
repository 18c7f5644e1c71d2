"""The torch Dataset over a DatasetLayout split: decode + preprocess in DataLoader workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from app.imagedata.errors import DecodeError
from app.imagedata.layout import ImageSource


class ImageDataset(torch.utils.data.Dataset):
    """Item ``i`` is ``(preprocess(image_i), i, error)``; ``error`` is "" or a DecodeError's
    message, in which case the tensor is zeros (the embedding loop skips or fails on it)."""

    def __init__(
        self,
        source: ImageSource,
        items: Sequence[Any],
        preprocess: Callable[[Image.Image], torch.Tensor],
    ) -> None:
        self.source = source
        self.items = items
        self.preprocess = preprocess
        self._blank = torch.zeros_like(preprocess(Image.new("RGB", (8, 8))))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        try:
            image = self.source.open(self.items[index])
        except DecodeError as exc:
            return self._blank.clone(), index, str(exc)
        return self.preprocess(image), index, ""
