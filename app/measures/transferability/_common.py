"""Shared validation and small linear-algebra helpers for the transferability scores.

Every score works on a private float64 copy of the caller's features, so float16/float32
arrays and read-only memory maps are accepted and never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LabelledFeatures:
    """Validated inputs: float64 copy of the features and labels remapped to 0..k-1."""

    features: FloatArray
    labels: IntArray
    n_classes: int
    counts: IntArray


def as_float64_features(features: npt.ArrayLike, name: str = "features") -> FloatArray:
    """Return a fresh float64 copy of a 2-D array, rejecting NaN/inf."""
    array = np.array(features, dtype=np.float64, copy=True)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_dims), got shape {array.shape}")
    if array.shape[1] < 1:
        raise ValueError(f"{name} must have at least one column")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return array


def _labels_array(labels: npt.ArrayLike) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError("labels contain NaN or infinite values")
    return array


def validate(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    method: str,
    min_per_class: int = 1,
) -> LabelledFeatures:
    """Validate (features, labels) and remap arbitrary labels to 0..k-1.

    Labels may be any sortable values (ints, strings, ...); they are remapped to 0..k-1 in
    sorted order with ``np.unique``. Every score here is invariant to that relabelling.
    """
    label_array = _labels_array(labels)
    x = as_float64_features(features)
    if x.shape[0] != label_array.shape[0]:
        raise ValueError(
            f"features and labels have different lengths: {x.shape[0]} vs {label_array.shape[0]}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"{method} needs at least 2 samples, got {x.shape[0]}")
    values, codes = np.unique(label_array, return_inverse=True)
    codes = codes.astype(np.int64).reshape(-1)
    counts = np.bincount(codes).astype(np.int64)
    if counts.size < 2:
        raise ValueError(f"{method} needs at least 2 classes, got {counts.size}")
    smallest = int(np.argmin(counts))
    if counts[smallest] < min_per_class:
        raise ValueError(
            f"{method} needs at least {min_per_class} samples per class; "
            f"class {values[smallest].item()!r} has {int(counts[smallest])}"
        )
    return LabelledFeatures(x, codes, int(counts.size), counts)


def class_means(x: FloatArray, labels: IntArray, n_classes: int) -> FloatArray:
    """Per-class mean rows (k x d), accumulated in float64."""
    sums = np.zeros((n_classes, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return sums / counts[:, None]


def softmax(logits: FloatArray) -> FloatArray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _range_tolerance(eigvals: FloatArray, shape: tuple[int, ...]) -> float:
    """Eigenvalues of a Gram matrix below this are numerically zero."""
    return max(float(eigvals.max()), 1e-300) * max(shape) * np.finfo(np.float64).eps


def pca_project(x: FloatArray, n_components: int) -> FloatArray:
    """Centre ``x`` and project it on its top principal directions (at most min(n, d)).

    Uses the eigen-decomposition of the smaller Gram matrix, much faster than an SVD of x.
    """
    centred = x - x.mean(axis=0)
    n, d = centred.shape
    n_keep = min(n_components, n, d)
    if n >= d:
        _, vecs = np.linalg.eigh(centred.T @ centred)
        return centred @ vecs[:, ::-1][:, :n_keep]
    vals, vecs = np.linalg.eigh(centred @ centred.T)
    vals, vecs = np.clip(vals[::-1][:n_keep], 0.0, None), vecs[:, ::-1][:, :n_keep]
    return vecs * np.sqrt(vals)


def orthonormal_range(x: FloatArray) -> FloatArray:
    """An orthonormal basis (n x r) of the column space of x, from the Gram matrix of x."""
    n, d = x.shape
    if n <= d:
        vals, vecs = np.linalg.eigh(x @ x.T)
        return vecs[:, vals > _range_tolerance(vals, x.shape)]
    vals, vecs = np.linalg.eigh(x.T @ x)
    keep = vals > _range_tolerance(vals, x.shape)
    return (x @ vecs[:, keep]) / np.sqrt(vals[keep])


def singular_values(m: FloatArray) -> FloatArray:
    """Singular values of m from the eigenvalues of its smaller Gram matrix."""
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    return np.sqrt(symmetric_psd_eigvals(gram))


def symmetric_psd_eigvals(gram: FloatArray) -> FloatArray:
    """Eigenvalues of a symmetric positive semi-definite matrix, negatives clipped to zero."""
    return np.clip(np.linalg.eigvalsh(gram), 0.0, None)
