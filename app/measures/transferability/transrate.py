"""TransRate (Huang et al., ICML 2022): mutual information between features and labels
estimated with the coding rate."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from ._common import FloatArray, IntArray, symmetric_psd_eigvals, validate

TransRateVariant = Literal["definition", "iimm_reference", "authors"]


def coding_rate(z: FloatArray, eps: float) -> float:
    """R(Z, eps) = 1/2 log det(I_d + Z^T Z / (n eps)) for the rows of ``z`` (n x d).

    ``eps`` plays the role of the squared distortion epsilon^2 of the paper (the official
    code's convention). The determinant is taken on the smaller of the two Gram matrices
    (Sylvester's identity), so the cost is O(n d min(n, d)).
    """
    n, d = z.shape
    gram = z.T @ z if n >= d else z @ z.T
    eigvals = symmetric_psd_eigvals(gram)
    return 0.5 * float(np.sum(np.log1p(eigvals / (n * eps))))


def _rank(eigvals: FloatArray, dim: int) -> int:
    """numpy's matrix_rank of a d x d PSD matrix from its eigenvalues (max * d * eps)."""
    return int(np.sum(eigvals > eigvals.max() * dim * np.finfo(np.float64).eps))


def transrate(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    eps: float = 1e-4,
    variant: TransRateVariant = "definition",
) -> float:
    """TransRate of Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022.

    ``variant="definition"`` (default): ``TrR = R(Z, eps) - R(Z, eps | Y)`` with the coding
    rate ``R(Z, eps) = 1/2 logdet(I_d + Z^T Z / (n eps))`` of the features Z, which are first
    centred by subtracting their overall mean (as the paper prescribes; classes are not
    re-centred), and the conditional rate ``R(Z|Y) = sum_c (n_c / n) R(Z_c)`` (each class
    rate normalised by its own n_c): the expectation over Y written in the paper, the
    estimator of the mutual information it derives.

    ``variant="iimm_reference"``: what the IIMM paper's code (mit-ll/IIMM ``Transrate``) and
    its sources (OpenGVLab's ``metrics.py``, tllib's ``transrate``) compute: the same rates
    but ``R(Z|Y) = (1/k) sum_c R(Z_c)``, equal class weights instead of n_c / n. The two
    coincide on balanced classes.

    ``variant="authors"``: the TransRate authors' released pipeline (Long-Kai/TransRate):
    rows L2-normalised, centred, then L2-normalised again after centring; the class rates
    weighted by n_c / n; and both rates divided by rank(Z^T Z / n) (numpy's matrix_rank
    tolerance): ``(R(Z) - sum_c (n_c/n) R(Z_c)) / rank``.

    ``eps`` (default 1e-4, the released codes' value) is the squared distortion: the rate is
    normalised by ``1/(n eps)`` as in the released codes; the ``d/(n eps^2)`` normalisation of
    the coding-rate literature (Ma et al. 2007) is the same score with eps rescaled. Higher
    is more transferable. Labels may be arbitrary; the score is invariant to relabelling.
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if variant not in ("definition", "iimm_reference", "authors"):
        raise ValueError(
            f"transrate variant must be 'definition', 'iimm_reference' or 'authors', "
            f"got {variant!r}"
        )
    data = validate(features, labels, method="transrate")
    if variant == "authors":
        return _authors(data.features, data.labels, data.n_classes, data.counts, eps)
    z = data.features - data.features.mean(axis=0)
    rate_all = coding_rate(z, eps)
    class_rates = np.array(
        [coding_rate(z[data.labels == c], eps) for c in range(data.n_classes)], dtype=np.float64
    )
    if variant == "definition":
        weights = data.counts / data.counts.sum()
    else:
        weights = np.full(data.n_classes, 1.0 / data.n_classes)
    return float(rate_all - np.dot(weights, class_rates))


def _unit_rows(x: FloatArray) -> FloatArray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("transrate (authors) L2-normalises rows: features contain a zero row")
    return x / norms


def _authors(x: FloatArray, labels: IntArray, k: int, counts: IntArray, eps: float) -> float:
    """Long-Kai/TransRate's pipeline (see :func:`transrate`)."""
    z = _unit_rows(x)
    z = _unit_rows(z - z.mean(axis=0))
    n, d = z.shape
    eig_all = symmetric_psd_eigvals(z.T @ z / n)
    rate_all = 0.5 * float(np.sum(np.log1p(eig_all / eps)))
    rate_given_y = 0.0
    for c in range(k):
        zc = z[labels == c]
        rate_given_y += counts[c] / n * coding_rate(zc, eps)
    return float((rate_all - rate_given_y) / _rank(eig_all, d))
