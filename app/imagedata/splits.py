"""Seeded, stratified splits: a test split when a dataset has none, and the paper's validation
split (10% of the training data, at most 5000 samples)."""

from __future__ import annotations

import numpy as np

from app.imagedata.errors import LayoutError
from app.imagedata.layout import Split

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
}
VAL_FRACTION = 0.1
VAL_CAP = 5000
TEST_FRACTION = 0.2


def stratified_holdout(
    labels: np.ndarray, n_holdout: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..n-1 into (kept, held out) with `n_holdout` held out, per class in
    proportion to its size (largest remainders, seeded), each class keeping at least one sample.

    Both index arrays are sorted, so the result does not depend on the order of iteration.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    sizes = np.array([len(m) for m in members])
    exact = sizes * (n_holdout / max(len(labels), 1))
    quota = np.minimum(np.floor(exact).astype(int), np.maximum(sizes - 1, 0))
    room = np.maximum(sizes - 1, 0) - quota
    order = np.lexsort((rng.random(len(classes)), -(exact - np.floor(exact))))
    for c in order:
        if quota.sum() >= n_holdout:
            break
        if room[c] > 0:
            quota[c] += 1
            room[c] -= 1
    held = [rng.permutation(m)[:q] for m, q in zip(members, quota, strict=True)]
    held_idx = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    kept_idx = np.setdiff1d(np.arange(len(labels)), held_idx)
    return kept_idx, held_idx


def validation_size(n_train: int) -> int:
    """10% of the training split, capped at 5000, as in the paper."""
    return min(round(VAL_FRACTION * n_train), VAL_CAP)


def derive_splits(
    splits: dict[str, Split], *, seed: int, test_fraction: float = TEST_FRACTION
) -> tuple[dict[str, Split], dict[str, str]]:
    """Add the missing standard splits to `splits` (already named train/test/val or "all").

    Returns the splits (train, test, val, train_no_val) and how each derived one was made.
    """
    splits, derived = dict(splits), {}
    if "train" not in splits and "test" not in splits:
        if "all" not in splits:
            raise LayoutError(f"dataset has no train or test split (found {sorted(splits)})")
        splits["train"] = splits.pop("all")
        splits["train"].name = "train"
    if "test" not in splits:
        train = splits["train"]
        kept, held = stratified_holdout(train.labels, round(test_fraction * len(train)), seed)
        splits["train"], splits["test"] = train.subset("train", kept), train.subset("test", held)
        derived["test"] = f"stratified {test_fraction:.0%} of the data, seed {seed}"
    if "train" not in splits:
        return splits, derived
    if "val" not in splits:
        train = splits["train"]
        kept, held = stratified_holdout(train.labels, validation_size(len(train)), seed + 1)
        splits["val"], splits["train_no_val"] = (
            train.subset("val", held),
            train.subset("train_no_val", kept),
        )
        derived["val"] = f"stratified 10% of train (at most {VAL_CAP}), seed {seed + 1}"
        derived["train_no_val"] = "train without val"
    else:
        splits["train_no_val"] = splits["train"].subset(
            "train_no_val", np.arange(len(splits["train"]))
        )
    return splits, derived
