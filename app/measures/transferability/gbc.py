"""GBC (Pándy et al., CVPR 2022): Gaussian Bhattacharyya Coefficient."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp

from ._common import FloatArray, IntArray, class_means, pca_project, validate

GaussianType = Literal["spherical", "diagonal"]
GBCVariant = Literal["definition", "iimm_reference", "authors"]

#: The absolute variance floor of the published programs (``max(variance, 1e-4)``).
REFERENCE_VARIANCE_FLOOR = 1e-4
#: The authors' official configuration reduces the features to this many PCA dimensions.
AUTHORS_PCA_DIM = 64


def bhattacharyya_distances(
    mean_a: FloatArray, var_a: FloatArray, means_b: FloatArray, vars_b: FloatArray
) -> FloatArray:
    """D_B between N(mean_a, diag var_a) and each row of (means_b, vars_b).

    ``D_B = 1/8 (mu_a - mu_b)^T S^-1 (mu_a - mu_b) + 1/2 ln(det S / sqrt(det S_a det S_b))``
    with ``S = (S_a + S_b) / 2``, for diagonal covariances (spherical ones are diagonal with
    equal entries).
    """
    pooled = 0.5 * (var_a + vars_b)
    mahalanobis = np.sum((mean_a - means_b) ** 2 / pooled, axis=-1)
    log_dets = np.sum(np.log(pooled) - 0.5 * (np.log(var_a) + np.log(vars_b)), axis=-1)
    return 0.125 * mahalanobis + 0.5 * log_dets


def bhattacharyya_coefficient(
    mean_a: FloatArray, var_a: FloatArray, means_b: FloatArray, vars_b: FloatArray
) -> FloatArray:
    """BC = exp(-D_B) (see :func:`bhattacharyya_distances`), the overlap of two Gaussians."""
    return np.exp(-bhattacharyya_distances(mean_a, var_a, means_b, vars_b))


def _class_variances(
    x: FloatArray, labels: IntArray, n_classes: int, gaussian_type: GaussianType
) -> tuple[FloatArray, FloatArray]:
    """Per-class means and (biased) per-dimension variances, floored away from zero."""
    means = class_means(x, labels, n_classes)
    centred = x - means[labels]
    variances = class_means(centred**2, labels, n_classes)
    if gaussian_type == "spherical":
        variances = np.repeat(variances.mean(axis=1, keepdims=True), x.shape[1], axis=1)
    floor = 1e-12 * max(float(np.mean(variances)), 1e-300)
    return means, np.maximum(variances, floor)


def _definition(x: FloatArray, labels: IntArray, k: int, gaussian_type: GaussianType) -> float:
    """-sum_{i != j} exp(-D_B(i, j)), summed in log space over the off-diagonal pairs."""
    means, variances = _class_variances(x, labels, k, gaussian_type)
    distances = np.stack(
        [bhattacharyya_distances(means[i], variances[i], means, variances) for i in range(k)]
    )
    off_diagonal = ~np.eye(k, dtype=bool)
    return -float(np.exp(logsumexp(-distances[off_diagonal])))


def _published(x: np.ndarray, labels: IntArray, k: int, gaussian_type: GaussianType) -> float:
    """GBC as the published programs compute it, in the dtype of ``x`` (see :func:`gbc`)."""
    dtype = x.dtype.type
    stats = []
    for c in range(k):
        rows = x[labels == c]
        mean = rows.mean(axis=0)
        variance = np.maximum(((rows - mean) ** 2).mean(axis=0), dtype(REFERENCE_VARIANCE_FLOOR))
        stats.append((mean, variance.mean() if gaussian_type == "spherical" else variance))
    total = dtype(0.0)
    for i in range(k):
        row = []
        for j in range(k):
            if i != j:
                (mu1, s1), (mu2, s2) = stats[i], stats[j]
                pooled = (s1 + s2) / dtype(2.0)
                first = np.sum((mu1 - mu2) ** 2 / pooled) / dtype(8.0)
                second = np.sum(np.log(pooled))
                second = second - dtype(0.5) * np.sum(np.log(s1))
                second = second - dtype(0.5) * np.sum(np.log(s2))
                row.append(np.exp(-(first + dtype(0.5) * second)))
        total = total + np.sum(np.array(row, dtype=x.dtype))
    return -float(total)


def gbc(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    gaussian_type: GaussianType = "spherical",
    pca_dim: int | None = 64,
    variant: GBCVariant = "definition",
) -> float:
    """GBC of Pándy et al., "Transferability Estimation using Bhattacharyya Class
    Separability", CVPR 2022: ``GBC = -sum_i sum_{j != i} BC(c_i, c_j)``.

    ``variant="definition"`` (default): each class c_i is modelled as a Gaussian
    N(mu_i, Sigma_i) fitted to its features after a PCA to ``pca_dim`` dimensions (default 64,
    as in the paper; ``None`` skips the PCA, and fewer dimensions are kept when n or d is
    smaller). ``gaussian_type="diagonal"`` uses per-dimension variances; ``"spherical"``
    (default) ``Sigma_i = s_i I`` with s_i the mean of them, whose log-determinant is
    ``dim * log s_i``. Variances are floored at 1e-12 times their mean (scale-free). BC is
    the Bhattacharyya coefficient exp(-D_B) of two Gaussians; the sum over the off-diagonal
    pairs is taken in log space, so coefficients far below 1e-16 (well separated classes)
    are kept rather than lost against the diagonal.

    ``variant="iimm_reference"``: what the IIMM paper's code (mit-ll/IIMM, after google's
    ``stable_transfer``) computes: no PCA (``pca_dim`` is ignored), an absolute variance
    floor of 1e-4 applied per dimension before the spherical mean, and, for the spherical
    type, the log-determinant term of D_B added once (``log s``, not ``dim * log s``).

    ``variant="authors"``: google-research ``stable_transfer`` with its official
    configuration: PCA to 64 dimensions (``pca_dim`` is ignored), features cast to float32
    and the same computation as ``"iimm_reference"`` in float32 (so coefficients below about
    1e-45 underflow to 0).

    GBC <= 0 and higher (closer to 0) means better separated classes. Each class needs at
    least 2 samples. Labels may be arbitrary; the score is invariant to relabelling.
    """
    if gaussian_type not in ("spherical", "diagonal"):
        raise ValueError(f"gaussian_type must be 'spherical' or 'diagonal', got {gaussian_type!r}")
    if variant not in ("definition", "iimm_reference", "authors"):
        raise ValueError(
            f"gbc variant must be 'definition', 'iimm_reference' or 'authors', got {variant!r}"
        )
    if pca_dim is not None and pca_dim < 1:
        raise ValueError(f"pca_dim must be a positive integer or None, got {pca_dim}")
    data = validate(features, labels, method="gbc", min_per_class=2)
    if variant == "iimm_reference":
        return _published(data.features, data.labels, data.n_classes, gaussian_type)
    if variant == "authors":
        reduced = pca_project(data.features, AUTHORS_PCA_DIM).astype(np.float32)
        return _published(reduced, data.labels, data.n_classes, gaussian_type)
    x = data.features if pca_dim is None else pca_project(data.features, pca_dim)
    return _definition(x, data.labels, data.n_classes, gaussian_type)
