"""How sure is an IIMM value, and how many images does it need?

- :func:`bootstrap_ci`: seeded percentile-bootstrap intervals for IIMM and its terms,
  resampling the images with replacement (the texts are fixed: they are the task's classes).
- :func:`stable_sample_size`: the number of images at which the IIMM's confidence interval
  is narrower than a tolerance, from the asymptotic (delta-method) variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from app.measures._blocks import Block, iter_blocks, normalised
from app.measures._validate import as_labels, check_pair
from app.measures.stats import accumulate

BOOTSTRAP_TERMS = ("iimm", "inter_modal", "intra_images", "correct_alignment", "modality_gap")


def _z(confidence: float) -> float:
    """Two-sided standard-normal quantile for ``confidence``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _checked(
    images: object, texts: object, labels: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validated images (raw rows), the L2-normalised texts and the labels."""
    X, T0 = check_pair(images, texts)
    T = normalised(T0, "texts")
    return X, T, as_labels(labels, X.shape[0], T.shape[0])


def _row_terms(blk: Block, y: np.ndarray, T: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Per-row (x_i·t_{y_i}, x_i·τ, ‖x_i‖²) of one block, shape (3, b)."""
    u = np.einsum("ij,ij->i", blk.raw, T[y]) * blk.inv_norms
    v = (blk.raw @ tau) * blk.inv_norms
    return np.stack([u, v, blk.sq_norms * blk.inv_norms * blk.inv_norms])


def _resample_weights(
    rng: np.random.Generator, draws_left: np.ndarray, rows_left: int, b: int
) -> np.ndarray:
    """Multinomial(n, 1/n) counts of one block for every replicate, drawn block by block.

    The number of draws falling in this block is Binomial(draws left, b / rows left), then
    spread uniformly over its rows: jointly exactly the multinomial of n draws over n rows.
    """
    p = 1.0 if rows_left == b else b / rows_left
    in_block = rng.binomial(draws_left, p)
    draws_left -= in_block
    return rng.multinomial(in_block, np.full(b, 1.0 / b))


def _replicate_sums(
    X: np.ndarray, y: np.ndarray, T: np.ndarray, n_boot: int, seed: int, block_rows: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sums per replicate (row 0: the data itself).

    Returns s_w (B+1 x d) and (B+1 x 5) columns Σ w_i x_i·t_{y_i}, Σ w_i x_i·τ, Σ w_i ‖x_i‖²,
    Σ w_i² ‖x_i‖², Σ w_i².
    """
    n, d = X.shape
    rng = np.random.default_rng(seed)
    tau = T.sum(axis=0)
    draws_left = np.full(n_boot, n, dtype=np.int64)
    sums, terms = np.zeros((n_boot + 1, d)), np.zeros((n_boot + 1, 5))
    for blk in iter_blocks(X, block_rows):
        b = blk.raw.shape[0]
        W = np.ones((n_boot + 1, b))
        W[1:] = _resample_weights(rng, draws_left, n - blk.start, b)
        sums += (W * blk.inv_norms) @ blk.raw
        rows = _row_terms(blk, y[blk.start : blk.start + b], T, tau)
        terms[:, :3] += W @ rows.T
        terms[:, 3:] += (W * W) @ np.stack([rows[2], np.ones(b)], axis=1)
    return sums, terms


def bootstrap_ci(
    images: object,
    texts: object,
    labels: object,
    *,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    block_rows: int | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Percentile-bootstrap intervals: name -> (estimate, low, high) for IIMM and its terms.

    Each replicate resamples the n images with replacement (multinomial counts w_i, drawn
    block by block so the pass streams); with s_w = Σ w_i x_i the replicate's terms are
    A_inc = Σ w_i (x_i·τ − x_i·t_{y_i}) / (n(k−1)),
    S_img = (‖s_w‖² − Σ w_i² ‖x_i‖²)/(n² − Σ w_i²) (the mean over pairs of distinct original
    images: pairs of copies of one image would bias the percentile interval upwards),
    A_cor = Σ w_i x_i·t_{y_i}/n, gap = ‖s_w/n − τ/k‖, IIMM = (A_inc + S_img)/2. One pass,
    O(B·n·d) time (a B x b by b x d product per block), O(B·d) memory; reproducible for a
    given ``seed`` and ``block_rows``. Keys: :data:`BOOTSTRAP_TERMS`.
    """
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2; got {n_boot}")
    alpha = 1.0 - confidence
    _z(confidence)
    X, T, y = _checked(images, texts, labels)
    sums, terms = _replicate_sums(X, y, T, n_boot, seed, block_rows)
    n, k = X.shape[0], T.shape[0]
    a_inc = (terms[:, 1] - terms[:, 0]) / (n * (k - 1))
    s_img = (np.einsum("ij,ij->i", sums, sums) - terms[:, 3]) / (n * n - terms[:, 4])
    values = {
        "iimm": 0.5 * (a_inc + s_img),
        "inter_modal": a_inc,
        "intra_images": s_img,
        "correct_alignment": terms[:, 0] / n,
        "modality_gap": np.linalg.norm(sums / n - T.mean(axis=0), axis=1),
    }
    out = {}
    for name, v in values.items():
        lo, hi = np.quantile(v[1:], [alpha / 2.0, 1.0 - alpha / 2.0])
        out[name] = (float(v[0]), float(lo), float(hi))
    return out


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Answer to "how many images do I need for a stable IIMM?"."""

    n_required: int  # smallest n with CI half-width <= tol
    n: int  # images given
    half_width: float  # CI half-width of the IIMM at the given n
    sd: float  # standard deviation of the IIMM's per-image influence values
    tol: float
    confidence: float

    @property
    def stable(self) -> bool:
        """Whether the given images already reach the tolerance."""
        return self.n >= self.n_required


def stable_sample_size(
    images: object,
    texts: object,
    labels: object,
    *,
    tol: float = 0.005,
    confidence: float = 0.95,
    block_rows: int | None = None,
) -> SampleSize:
    """Images needed for IIMM's ``confidence`` interval to have half-width <= ``tol``.

    Delta method: IIMM = A_inc/2 + S_img/2 is asymptotically a mean of per-image influence
    values φ_i = (x_i·τ − x_i·t_{y_i})/(2(k−1)) + x_i·μ (μ = s/n; the U-statistic S_img
    contributes twice its projection x_i·μ), so its standard error is sd(φ)/√n and
    n_required = ⌈(z·sd(φ)/tol)²⌉ with z the normal quantile. Two O(n·d) passes. It assumes
    the given images are an i.i.d. sample of the task's distribution; the estimate itself
    is reliable once the given n is a few hundred.
    """
    if not tol > 0.0:
        raise ValueError(f"tol must be positive; got {tol}")
    z = _z(confidence)
    X, T, y = _checked(images, texts, labels)
    n, k = X.shape[0], T.shape[0]
    mu, tau = accumulate(X, y, k, block_rows).image_sum / n, T.sum(axis=0)
    total, total_sq = 0.0, 0.0
    for blk in iter_blocks(X, block_rows):
        u, v, _ = _row_terms(blk, y[blk.start : blk.start + blk.raw.shape[0]], T, tau)
        phi = (v - u) / (2.0 * (k - 1)) + (blk.raw @ mu) * blk.inv_norms
        total, total_sq = total + float(phi.sum()), total_sq + float(phi @ phi)
    sd = math.sqrt(max(total_sq - total * total / n, 0.0) / (n - 1))
    n_required = max(2, math.ceil((z * sd / tol) ** 2))
    return SampleSize(n_required, n, z * sd / math.sqrt(n), sd, tol, confidence)
