"""GBC (Pándy et al., CVPR 2022): Gaussian Bhattacharyya Coefficient."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from ._common import FloatArray, IntArray, class_means, pca_project, validate

GaussianType = Literal["spherical", "diagonal"]


def bhattacharyya_coefficient(
    mean_a: FloatArray, var_a: FloatArray, means_b: FloatArray, vars_b: FloatArray
) -> FloatArray:
    """BC = exp(-D_B) between N(mean_a, diag var_a) and each row of (means_b, vars_b).

    ``D_B = 1/8 (mu_a - mu_b)^T S^-1 (mu_a - mu_b) + 1/2 ln(det S / sqrt(det S_a det S_b))``
    with ``S = (S_a + S_b) / 2``, for diagonal covariances (spherical ones are diagonal with
    equal entries).
    """
    pooled = 0.5 * (var_a + vars_b)
    mahalanobis = np.sum((mean_a - means_b) ** 2 / pooled, axis=-1)
    log_dets = np.sum(np.log(pooled) - 0.5 * (np.log(var_a) + np.log(vars_b)), axis=-1)
    return np.exp(-(0.125 * mahalanobis + 0.5 * log_dets))


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


def gbc(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    gaussian_type: GaussianType = "spherical",
    pca_dim: int | None = 64,
) -> float:
    """GBC of Pándy et al., "Transferability Estimation using Bhattacharyya Class
    Separability", CVPR 2022: ``GBC = -sum_i sum_{j != i} BC(c_i, c_j)``.

    Each class c_i is modelled as a Gaussian N(mu_i, Sigma_i) fitted to its features after a
    PCA to ``pca_dim`` dimensions (default 64, as in the paper; ``None`` skips the PCA, and
    fewer dimensions are kept when n or d is smaller). ``gaussian_type="diagonal"`` uses
    per-dimension variances; ``"spherical"`` (default) one variance per class, the mean of
    them. BC is the Bhattacharyya coefficient (overlap) of two Gaussians, so GBC <= 0 and
    higher (closer to 0) means better separated classes. Each class needs at least 2 samples.
    Labels may be arbitrary; the score is invariant to relabelling.
    """
    if gaussian_type not in ("spherical", "diagonal"):
        raise ValueError(f"gaussian_type must be 'spherical' or 'diagonal', got {gaussian_type!r}")
    if pca_dim is not None and pca_dim < 1:
        raise ValueError(f"pca_dim must be a positive integer or None, got {pca_dim}")
    data = validate(features, labels, method="gbc", min_per_class=2)
    x = data.features if pca_dim is None else pca_project(data.features, pca_dim)
    means, variances = _class_variances(x, data.labels, data.n_classes, gaussian_type)
    total = 0.0
    for i in range(data.n_classes):
        coefficients = bhattacharyya_coefficient(means[i], variances[i], means, variances)
        total += float(coefficients.sum() - coefficients[i])
    return -total
