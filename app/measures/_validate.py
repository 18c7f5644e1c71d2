"""Input validation shared by every measure; errors are ``ValueError`` with an actionable text.

Checks that need the whole of a (possibly memory-mapped) image array -- NaN/inf values and
zero vectors -- are made inside the streaming pass (:func:`check_rows`), so validating never
costs a pass of its own.
"""

from __future__ import annotations

import numpy as np


def as_matrix(name: str, a: object) -> np.ndarray:
    """Return ``a`` as a 2-D real array without copying it (memory maps stay memory maps)."""
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, dim); got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers (float16/32/64); got dtype {arr.dtype}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one column; got shape {arr.shape}")
    return arr


def check_pair(images: object, texts: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes of an (images, texts) pair: same dimension, >= 2 images, >= 2 texts."""
    X = as_matrix("images", images)
    T = as_matrix("texts", texts)
    if X.shape[1] != T.shape[1]:
        raise ValueError(
            f"texts have dimension {T.shape[1]} but images have dimension {X.shape[1]}; "
            "both must be embeddings of the same model"
        )
    if X.shape[0] < 2:
        raise ValueError(f"need at least 2 images; got {X.shape[0]}")
    if T.shape[0] < 2:
        raise ValueError(f"need at least 2 classes (text embeddings); got {T.shape[0]}")
    return X, T


def check_images(images: object, name: str = "images") -> np.ndarray:
    """Validate the shape of one embedding matrix on its own (at least 2 rows)."""
    X = as_matrix(name, images)
    if X.shape[0] < 2:
        raise ValueError(f"need at least 2 {name}; got {X.shape[0]}")
    return X


def as_labels(labels: object, n: int, num_classes: int) -> np.ndarray:
    """Return ``labels`` as a 1-D ``intp`` array of length ``n`` with values in 0..k-1."""
    y = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array; got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(
            f"labels has length {y.shape[0]} but images has {n} rows; give one label per image"
        )
    if n == 0:
        return np.empty(0, dtype=np.intp)
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"labels must be integers; label {i} is {y[i].item()!r}")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers in 0..k-1; got dtype {y.dtype}")
    lo, hi = y.min(), y.max()
    if lo < 0 or hi >= num_classes:
        wrong = (lo if lo < 0 else hi).item()
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1} (one class per text embedding, "
            f"{num_classes} texts); got {wrong!r}"
        )
    return y.astype(np.intp, copy=False)


def check_rows(
    name: str,
    block: np.ndarray,
    sq_norms: np.ndarray,
    offset: int,
    index: np.ndarray | None = None,
) -> None:
    """Raise on the first row of ``block`` holding NaN/inf or being a zero vector.

    ``sq_norms`` are the squared row norms (already rescued from overflow/underflow);
    ``offset`` is the index of the block's first row in the caller's array, and ``index``
    (optional) the position of each row of ``block`` relative to it, for gathered rows.
    """
    rows = np.arange(block.shape[0]) if index is None else index
    bad = ~np.isfinite(sq_norms)
    if bad.any():
        i = int(rows[np.flatnonzero(bad)[0]])
        raise ValueError(f"{name} row {offset + i} contains NaN or infinite values")
    zero = sq_norms == 0.0
    if zero.any():
        i = int(rows[np.flatnonzero(zero)[0]])
        raise ValueError(f"{name} row {offset + i} is a zero vector; it cannot be L2-normalised")
