"""The paper's validation split: 10 % of the training data, at most 5000 samples, drawn
with a fixed seed (§3 of DESIGN.md)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Subset

VAL_FRACTION = 0.1
VAL_MAX = 5000


def validation_split(
    dataset: Dataset[Any],
    *,
    fraction: float = VAL_FRACTION,
    max_size: int = VAL_MAX,
    seed: int = 0,
) -> tuple[Subset[Any], Subset[Any]]:
    """``(train, val)`` subsets: ``val`` holds ``min(max_size, max(1, round(fraction·n)))``
    indices of a seeded permutation, ``train`` the rest (both in ascending index order)."""
    n = len(dataset)  # type: ignore[arg-type]
    if n < 2:
        raise ValueError("need at least 2 samples to split off a validation set")
    size = min(max_size, max(1, round(fraction * n)), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx = sorted(order[:size].tolist())
    train_idx = sorted(order[size:].tolist())
    return Subset(dataset, train_idx), Subset(dataset, val_idx)
