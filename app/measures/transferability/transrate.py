"""TransRate (Huang et al., ICML 2022): mutual information between features and labels
estimated with the coding rate."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from ._common import FloatArray, symmetric_psd_eigvals, validate

TransRateVariant = Literal["paper", "code"]


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


def transrate(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    eps: float = 1e-4,
    variant: TransRateVariant = "paper",
) -> float:
    """TransRate of Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022.

    ``TrR = R(Z, eps) - R(Z, eps | Y)`` with the coding rate
    ``R(Z, eps) = 1/2 logdet(I_d + Z^T Z / (n eps))`` of the features Z, which are first centred
    by subtracting their overall mean (as the paper prescribes; classes are not re-centred).
    The conditional rate sums the per-class rates ``R(Z_c, eps)`` (each normalised by its own
    n_c) with weights that differ between publications:

    - ``variant="paper"`` (default): ``R(Z|Y) = sum_c (n_c / n) R(Z_c)``, the expectation over
      Y written in the paper; it is the estimator of the mutual information the paper derives.
    - ``variant="code"``: ``R(Z|Y) = (1/k) sum_c R(Z_c)``, the unweighted class mean of the
      authors' released code. Both coincide on balanced classes.

    ``eps`` (default 1e-4, the released code's value) is the squared distortion: the rate is
    normalised by ``1/(n eps)`` as in the released code; the ``d/(n eps^2)`` normalisation of
    the coding-rate literature (Ma et al. 2007) is the same score with eps rescaled. Higher
    is more transferable. Labels may be arbitrary; the score is invariant to relabelling.
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if variant not in ("paper", "code"):
        raise ValueError(f"variant must be 'paper' or 'code', got {variant!r}")
    data = validate(features, labels, method="transrate")
    z = data.features - data.features.mean(axis=0)
    rate_all = coding_rate(z, eps)
    class_rates = np.array(
        [coding_rate(z[data.labels == c], eps) for c in range(data.n_classes)], dtype=np.float64
    )
    if variant == "paper":
        weights = data.counts / data.counts.sum()
    else:
        weights = np.full(data.n_classes, 1.0 / data.n_classes)
    return float(rate_all - np.dot(weights, class_rates))
