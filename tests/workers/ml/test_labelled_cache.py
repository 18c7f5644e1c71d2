"""`LabelledImages` keeps preprocessed images between epochs up to its byte budget: the same
tensors as decoding again, each image opened once while it fits, the rest every read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from workers.ml.data.labelled import LabelledImages


@dataclass
class CountingSource:
    """Images made from their item name; counts how often each is opened."""

    opened: dict[str, int] = field(default_factory=dict)

    def open(self, item: str) -> Image.Image:
        self.opened[item] = self.opened.get(item, 0) + 1
        rng = np.random.default_rng(int(item))
        return Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))


@dataclass
class Rows:
    items: list[str]
    labels: list[int]


class Layout:
    def __init__(self, n: int) -> None:
        self.source = CountingSource()
        self.rows = Rows([str(i) for i in range(n)], [i % 3 for i in range(n)])

    def split(self, name: str) -> Rows:
        return self.rows


def preprocess(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 255.0


def _epochs(data: LabelledImages, epochs: int) -> list[list[tuple[Any, int]]]:
    return [[data[i] for i in range(len(data))] for _ in range(epochs)]


def test_kept_images_are_the_decoded_ones_and_opened_once() -> None:
    plain_layout, kept_layout = Layout(6), Layout(6)
    plain = _epochs(LabelledImages(plain_layout, "train", preprocess), 3)
    kept = _epochs(LabelledImages(kept_layout, "train", preprocess, cache_bytes=2**20), 3)
    for a, b in zip(plain, kept, strict=True):
        for (x, y), (u, v) in zip(a, b, strict=True):
            assert torch.equal(x, u) and y == v
    assert plain_layout.source.opened == {str(i): 3 for i in range(6)}
    assert kept_layout.source.opened == {str(i): 1 for i in range(6)}


def test_images_past_the_budget_are_decoded_on_every_read() -> None:
    layout = Layout(5)
    one = 3 * 8 * 8 * 4  # bytes of one preprocessed image (float32, 3×8×8)
    data = LabelledImages(layout, "train", preprocess, cache_bytes=2 * one)
    _epochs(data, 3)
    assert layout.source.opened == {"0": 1, "1": 1, "2": 3, "3": 3, "4": 3}
    assert data.kept_bytes == 2 * one
