"""Fixtures for the image-data tests: tiny image folders written with Pillow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MakeFolder = Callable[..., Path]


def write_png(path: Path, seed: int, size: int = 8) -> Path:
    """A small random RGB PNG (distinct bytes per seed)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def make_folder(tmp_path: Path) -> MakeFolder:
    """Build ``root/[split/]class/i.png`` for the given {class: count} (per split)."""

    def make(
        counts: dict[str, int], *, splits: tuple[str, ...] = (), root: Path | None = None
    ) -> Path:
        root = root or tmp_path / "data"
        seed = 0
        for split in splits or ("",):
            for cls, count in counts.items():
                for i in range(count):
                    seed += 1
                    write_png(root / split / cls / f"{i:03d}.png", seed)
        return root

    return make
