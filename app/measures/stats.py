"""Mergeable sufficient statistics of the image embeddings: the O(n·d) measures in one pass.

With unit image rows ``x_i`` (the accumulator L2-normalises every row itself), labels ``y_i``
and unit text rows ``t_c``, everything below is a function of

- ``counts[c]`` = #{i : y_i = c} (so n = Σ_c counts[c]),
- ``class_sums[c]`` = S_c = Σ_{i : y_i = c} x_i (k x d, float64; s = Σ_c S_c = Σ_i x_i),
- ``sq_norms`` = Σ_i ‖x_i‖² (= n up to rounding),

all of which add over disjoint shards, so shards embedded on different workers merge into
exactly the whole-dataset statistics (up to float64 summation order).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from scipy import sparse

from app.measures import _native
from app.measures._blocks import iter_blocks, normalised, rescued_rows
from app.measures._validate import as_labels, as_matrix

_FORMAT = "iimm.modality_stats/1"


class ModalityStats:
    """Accumulator of counts, per-class sums and squared norms of L2-normalised image rows.

    ``update`` streams blocks in; ``merge`` combines shards; ``result(texts)`` gives the
    additive measures (see :func:`additive_measures` for the formulas).
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        if int(num_classes) < 1 or int(dim) < 1:
            raise ValueError(f"num_classes and dim must be >= 1; got {num_classes}, {dim}")
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.counts = np.zeros(self.num_classes, dtype=np.int64)
        self.class_sums = np.zeros((self.num_classes, self.dim), dtype=np.float64)
        self.sq_norms = 0.0

    @property
    def n(self) -> int:
        """Number of image rows accumulated so far."""
        return int(self.counts.sum())

    @property
    def image_sum(self) -> np.ndarray:
        """s = Σ_i x_i (float64, length d)."""
        return self.class_sums.sum(axis=0)

    def update(self, images_block: Any, labels_block: Any, *, row_offset: int = 0) -> None:
        """Add a block of image rows (any float dtype, normalised here) with their labels.

        ``row_offset`` only serves error messages (the index of the block's first row).
        Raises ``ValueError`` for wrong shapes, labels outside 0..k-1, NaN/inf or zero rows;
        the accumulator is left unchanged when a block is rejected.
        """
        X = as_matrix("images", images_block)
        if X.shape[1] != self.dim:
            raise ValueError(f"images have dimension {X.shape[1]}; this accumulator has {self.dim}")
        y = as_labels(labels_block, X.shape[0], self.num_classes)
        shard = accumulate(X, y, self.num_classes, row_offset=row_offset)
        self.counts += shard.counts
        self.class_sums += shard.class_sums
        self.sq_norms += shard.sq_norms

    def merge(self, other: ModalityStats) -> ModalityStats:
        """Return a new accumulator holding the statistics of both shards."""
        if (other.num_classes, other.dim) != (self.num_classes, self.dim):
            raise ValueError(
                f"cannot merge statistics of shape (k={other.num_classes}, d={other.dim}) "
                f"into (k={self.num_classes}, d={self.dim})"
            )
        out = ModalityStats(self.num_classes, self.dim)
        out.counts = self.counts + other.counts
        out.class_sums = self.class_sums + other.class_sums
        out.sq_norms = self.sq_norms + other.sq_norms
        return out

    def result(self, texts: Any) -> dict[str, float]:
        """The additive measures for the class text embeddings ``texts`` (k x d, normalised)."""
        T = as_matrix("texts", texts)
        if T.shape != (self.num_classes, self.dim):
            raise ValueError(
                f"texts must have shape (k={self.num_classes}, d={self.dim}); got {T.shape}"
            )
        if self.num_classes < 2:
            raise ValueError(f"need at least 2 classes (text embeddings); got {self.num_classes}")
        if self.n < 2:
            raise ValueError(f"need at least 2 images; got {self.n}")
        return additive_measures(self, normalised(T, "texts"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; float64 sums are stored exactly (base64 of little-endian)."""
        raw = np.ascontiguousarray(self.class_sums, dtype="<f8").tobytes()
        return {
            "format": _FORMAT,
            "num_classes": self.num_classes,
            "dim": self.dim,
            "counts": [int(c) for c in self.counts],
            "class_sums_b64": base64.b64encode(raw).decode("ascii"),
            "sq_norms": float(self.sq_norms),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModalityStats:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != _FORMAT:
            raise ValueError(f"not a ModalityStats dict (format {d.get('format')!r})")
        out = cls(int(d["num_classes"]), int(d["dim"]))
        counts = np.asarray(d["counts"], dtype=np.int64)
        sums = np.frombuffer(base64.b64decode(d["class_sums_b64"]), dtype="<f8")
        if counts.shape != (out.num_classes,) or sums.size != out.num_classes * out.dim:
            raise ValueError("ModalityStats dict is inconsistent with its num_classes and dim")
        out.counts = counts.copy()
        out.class_sums = sums.reshape(out.num_classes, out.dim).astype(np.float64)
        out.sq_norms = float(d["sq_norms"])
        return out

    def __repr__(self) -> str:
        return f"ModalityStats(num_classes={self.num_classes}, dim={self.dim}, n={self.n})"


def class_sum_matrix(labels: np.ndarray, weights: np.ndarray, num_classes: int) -> sparse.csc_array:
    """k x b sparse matrix W with W[y_i, i] = weights[i], so W @ raw gives weighted class sums."""
    b = labels.shape[0]
    return sparse.csc_array(
        (weights, labels, np.arange(b + 1)), shape=(num_classes, b), dtype=np.float64
    )


def additive_measures(stats: ModalityStats, T: np.ndarray) -> dict[str, float]:
    """The measures that are functions of the sufficient statistics, for unit text rows ``T``.

    With s = Σ_i x_i, τ = Σ_c t_c, q = Σ_i ‖x_i‖², n images and k classes:

    - inter_modal  A_inc = (s·τ − Σ_c S_c·t_c) / (n (k−1))
    - correct_alignment  A_cor = Σ_c S_c·t_c / n
    - intra_images  S_img = (‖s‖² − q) / (n (n−1)); intra_texts likewise over the texts
    - iimm = (A_inc + S_img) / 2
    - modality_gap = ‖s/n − τ/k‖
    - calinski_harabasz = B (N−2) / W with N = n+k, B = n‖s/n − m‖² + k‖τ/k − m‖²,
      m = (s+τ)/N, W = (q − ‖s‖²/n) + (Σ‖t_c‖² − ‖τ‖²/k)  (1.0 when W = 0, as scikit-learn)
    """
    n, k = stats.n, T.shape[0]
    s, tau = stats.image_sum, T.sum(axis=0)
    correct = float(np.einsum("ij,ij->", stats.class_sums, T))
    a_inc = (float(s @ tau) - correct) / (n * (k - 1))
    s_img = (float(s @ s) - stats.sq_norms) / (n * (n - 1))
    q_txt = float(np.einsum("ij,ij->", T, T))
    s_txt = (float(tau @ tau) - q_txt) / (k * (k - 1))
    mu_i, mu_t = s / n, tau / k
    return {
        "n": float(n),
        "inter_modal": a_inc,
        "intra_images": s_img,
        "intra_texts": s_txt,
        "correct_alignment": correct / n,
        "modality_gap": float(np.linalg.norm(mu_i - mu_t)),
        "iimm": 0.5 * (a_inc + s_img),
        "calinski_harabasz": _calinski_harabasz(n, k, s, tau, stats.sq_norms, q_txt),
    }


def _calinski_harabasz(
    n: int, k: int, s: np.ndarray, tau: np.ndarray, q_img: float, q_txt: float
) -> float:
    """Two-cluster Calinski-Harabasz index from sums (see :func:`additive_measures`)."""
    m = (s + tau) / (n + k)
    between = n * float(np.sum((s / n - m) ** 2)) + k * float(np.sum((tau / k - m) ** 2))
    within = max(q_img - float(s @ s) / n, 0.0) + max(q_txt - float(tau @ tau) / k, 0.0)
    # Every point on its cluster's centroid (scikit-learn's 1.0): within is then rounding
    # noise of the O(n) terms it cancels, not dispersion.
    if within <= 64 * float(np.finfo(np.float64).eps) * (q_img + q_txt):
        return 1.0
    return between * (n + k - 2) / within


def accumulate(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    block_rows: int | None = None,
    *,
    row_offset: int = 0,
) -> ModalityStats:
    """One streaming pass over shape-checked ``images`` and checked ``labels``.

    Through the C kernel when it is available (each row read once, see
    :mod:`app.measures._native`), else NumPy blocks; the two agree to float64 rounding.
    """
    stats = ModalityStats(num_classes, images.shape[1])
    if _native.supports(images):
        _accumulate_native(stats, images, labels, block_rows, row_offset)
    else:
        for blk in iter_blocks(images, block_rows, offset=row_offset):
            y = labels[blk.start : blk.start + blk.raw.shape[0]]
            stats.class_sums += class_sum_matrix(y, blk.inv_norms, num_classes) @ blk.raw
            stats.sq_norms += float(blk.sq_norms @ (blk.inv_norms * blk.inv_norms))
    stats.counts += np.bincount(labels, minlength=num_classes)
    return stats


def _accumulate_native(
    stats: ModalityStats,
    images: np.ndarray,
    labels: np.ndarray,
    block_rows: int | None,
    row_offset: int,
) -> None:
    """The pass of :func:`accumulate` through the kernel; rows it leaves out (zero or
    non-finite norms) go through the NumPy path, which raises or rescues them."""
    rows = block_rows or _native.KERNEL_BLOCK_ROWS
    sq = np.empty(min(rows, images.shape[0]))
    for start in range(0, images.shape[0], rows):
        block = images[start : start + rows]
        y = np.ascontiguousarray(labels[start : start + rows], dtype=np.intp)
        q = sq[: block.shape[0]]
        bad = _native.class_sums(block, y, stats.class_sums, q)
        with np.errstate(divide="ignore", invalid="ignore"):  # bad rows are replaced below
            inv = 1.0 / np.sqrt(q)
            unit = q * inv * inv  # ‖x_i‖² · (1/‖x_i‖)², summed like the NumPy path
        if bad.size:
            fixed = rescued_rows(block, bad, offset=row_offset + start)
            np.add.at(stats.class_sums, y[bad], fixed.raw * fixed.inv_norms[:, None])
            unit[bad] = fixed.sq_norms * fixed.inv_norms * fixed.inv_norms
        stats.sq_norms += float(unit.sum())
