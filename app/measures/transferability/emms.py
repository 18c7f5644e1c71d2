"""EMMS (Meng, Shao et al., NeurIPS 2023): Efficient Multi-task Model Selector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from ._common import FloatArray, IntArray, as_float64_features, orthonormal_range

EMMSVariant = Literal["definition", "iimm_reference", "authors"]
#: The published program adds this to each column's standard deviation when z-scoring.
PUBLISHED_STD_EPSILON = 1e-8


def _label_targets(
    labels: npt.ArrayLike,
    n: int,
    label_embeddings: npt.ArrayLike | Sequence[npt.ArrayLike],
    *,
    normalise_rows: bool = True,
) -> list[FloatArray]:
    """(Row-normalised) label embeddings indexed by the labels: one n x D matrix per source."""
    if isinstance(label_embeddings, np.ndarray):
        is_stack = label_embeddings.ndim == 3
        sources: list[npt.ArrayLike] = list(label_embeddings) if is_stack else [label_embeddings]
    elif isinstance(label_embeddings, Sequence) and len(label_embeddings) > 0:
        sources = list(label_embeddings)
        if np.asarray(sources[0]).ndim != 2:
            sources = [label_embeddings]  # a nested list describing one matrix
    else:
        sources = [label_embeddings]
    y = _integer_labels(labels, n)
    embeddings = [as_float64_features(s, name="label_embeddings") for s in sources]
    if len({e.shape for e in embeddings}) != 1:
        shapes = [e.shape for e in embeddings]
        raise ValueError(f"all label-embedding matrices must have the same shape, got {shapes}")
    k = embeddings[0].shape[0]
    if k < 2:
        raise ValueError(f"emms needs at least 2 classes, got {k} label embeddings")
    if y.max() >= k:
        raise ValueError(f"labels must be integers in 0..{k - 1} to index label_embeddings")
    targets = []
    for e in embeddings:
        norms = np.linalg.norm(e, axis=1, keepdims=True)
        if normalise_rows and np.any(norms == 0):
            raise ValueError("label_embeddings contain a zero row")
        targets.append((e / norms)[y] if normalise_rows else e[y])
    return targets


def _integer_labels(labels: npt.ArrayLike, n: int) -> IntArray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"features and labels have different lengths: {n} vs {y.shape[0]}")
    if y.dtype.kind not in "iub" and not (
        y.dtype.kind == "f" and np.isfinite(y).all() and np.all(y == np.round(y))
    ):
        raise ValueError("labels must be integers indexing the rows of label_embeddings")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise ValueError("labels must be non-negative integers")
    if np.unique(y).size < 2:
        raise ValueError("emms needs at least 2 classes among the labels")
    return y


def project_simplex(v: FloatArray) -> FloatArray:
    """Euclidean projection onto the probability simplex (sort-based, Held et al. 1974)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    index = np.arange(1, v.size + 1)
    rho = np.nonzero(u - cumulative / index > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1.0), 0.0)


def _simplex_least_squares(
    gram: FloatArray, rhs: FloatArray, t: FloatArray, n_steps: int = 500
) -> FloatArray:
    """min_t t^T G t - 2 b^T t over the simplex, by projected gradient from ``t``."""
    step = 1.0 / max(float(np.linalg.eigvalsh(gram)[-1]), 1e-300)
    for _ in range(n_steps):
        new = project_simplex(t - step * (gram @ t - rhs))
        if np.max(np.abs(new - t)) < 1e-13:
            return new
        t = new
    return t


def emms(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    label_embeddings: npt.ArrayLike | Sequence[npt.ArrayLike],
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    variant: EMMSVariant = "definition",
) -> float:
    """EMMS of Meng, Shao et al., "Foundation Model is Efficient Multimodal Multitask Model
    Selector", NeurIPS 2023 (cited by the IIMM paper as Shao et al. 2024).

    Labels become "F-labels": for each label-embedding source m (a k x D matrix; here the
    model's own class text embeddings T), ``Z_m = normalise(T_m)[labels]`` (n x D, rows L2
    normalised as in the paper). EMMS fits the weighted linear square regression
    ``min_{W, t} ||X W - sum_m t_m Z_m||_F^2`` with t on the probability simplex, by
    alternating minimisation: W by least squares, then t by a simplex-constrained least
    squares (projected gradient). The score is ``-||X W - sum_m t_m Z_m||_F^2 / n``, in
    [-1, 0], higher = more transferable. With one source, t = 1 and no iteration is needed.

    Iterations: the paper's Algorithm 1 alternates until convergence while the released code
    stops after a fixed small count. The objective is jointly convex, so the converged value
    is unique; the default (``max_iter=100``, stop when the objective changes by less than
    ``tol`` relatively) runs to convergence, and ``max_iter=1`` mimics a single alternation.
    ``labels`` must be integers in 0..k-1 (they index the embedding rows; not remapped).

    ``variant="iimm_reference"`` is what the IIMM paper's code computes (mit-ll/IIMM ``EMMS``,
    borrowed unchanged from the EMMS authors' OpenGVLab/Multitask-Model-Selector
    ``metrics.py``, so ``"authors"`` is the same computation). Differences from the
    definition: the label embeddings are not row-normalised; features and each source's
    F-labels are z-scored per column (``(v - mean) / (std + 1e-8)``); exactly one
    alternation from equal weights (W by least squares on ``sum_m Z_m / M``, then t by
    unconstrained least squares of the fitted values on the sources, projected onto the
    simplex), and the residual is that of the first W against the new ``sum_m t_m Z_m``;
    the reported score is ``-||X W - Z t||_F^2 / n * D`` (the program's ``/ N*D2``, D the
    label-embedding width) instead of ``/ n``. ``max_iter`` and ``tol`` are ignored.
    """
    if variant not in ("definition", "iimm_reference", "authors"):
        raise ValueError(
            f"emms variant must be 'definition', 'iimm_reference' or 'authors', got {variant!r}"
        )
    x = as_float64_features(features)
    if x.shape[0] < 2:
        raise ValueError(f"emms needs at least 2 samples, got {x.shape[0]}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be non-negative, got {max_iter}")
    if variant != "definition":
        raw = _label_targets(labels, x.shape[0], label_embeddings, normalise_rows=False)
        return _published(x, raw)
    targets = _label_targets(labels, x.shape[0], label_embeddings)
    objective = _alternating_minimisation(x, targets, max_iter, tol)
    return float(-objective / x.shape[0])


def _alternating_minimisation(
    x: FloatArray, targets: list[FloatArray], max_iter: int, tol: float
) -> float:
    """Alternate the W and t steps; return the objective with W optimal for the final t."""
    u = orthonormal_range(x)
    # The W step is least squares for all columns at once: X W = U U^T (Z t).
    fitted_parts = [u @ (u.T @ z) for z in targets]
    residuals = [z - f for z, f in zip(targets, fitted_parts, strict=True)]
    gram = np.array([[np.sum(a * b) for b in residuals] for a in residuals])
    z_gram = np.array([[np.sum(a * b) for b in targets] for a in targets])
    t = np.full(len(targets), 1.0 / len(targets))
    objective = float(t @ gram @ t)
    for _ in range(max_iter if len(targets) > 1 else 0):
        fitted = sum(tm * f for tm, f in zip(t, fitted_parts, strict=True))
        rhs = np.array([np.sum(z * fitted) for z in targets])
        t = _simplex_least_squares(z_gram, rhs, t)
        new_objective = float(t @ gram @ t)
        converged = abs(objective - new_objective) <= tol * max(abs(objective), 1e-300)
        objective = new_objective
        if converged:
            break
    return objective


def _z_scored(v: FloatArray) -> FloatArray:
    return (v - v.mean(axis=0)) / (v.std(axis=0) + PUBLISHED_STD_EPSILON)


def _published(x: FloatArray, raw_targets: list[FloatArray]) -> float:
    """EMMS as the published program computes it (see :func:`emms`, ``"iimm_reference"``)."""
    n = x.shape[0]
    xz = _z_scored(x)
    targets = np.stack([_z_scored(z) for z in raw_targets], axis=2)  # n x D x M
    m = targets.shape[2]
    u = orthonormal_range(xz)
    start = targets @ np.full(m, 1.0 / m)
    fitted = u @ (u.T @ start)  # X W for the least-squares W of the first alternation
    weights, *_ = np.linalg.lstsq(targets.reshape(-1, m), fitted.reshape(-1), rcond=None)
    combined = targets @ project_simplex(weights)
    return float(-(np.sum((fitted - combined) ** 2) / n * targets.shape[1]))
