"""LogME (You et al., ICML 2021): logarithm of the maximum evidence of a Bayesian linear model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._common import FloatArray, IntArray, validate

_TINY = 1e-300


@dataclass(frozen=True)
class Spectrum:
    """Eigen-decomposition of F^T F restricted to its range: sigma_i = s_i^2 and U^T y."""

    sigma: FloatArray
    projected_targets: FloatArray
    n: int
    d: int


@dataclass(frozen=True)
class EvidenceFit:
    """Converged hyper-parameters of one target and its log evidence (not divided by n)."""

    alpha: float
    beta: float
    log_evidence: float


def _one_hot_products(rows: FloatArray, labels: IntArray, n_classes: int) -> FloatArray:
    """rows^T Y for the one-hot matrix Y of ``labels``, without forming Y (r x k)."""
    sums = np.zeros((n_classes, rows.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, rows)
    return sums.T


def _spectrum(f: FloatArray, labels: IntArray, n_classes: int) -> Spectrum:
    """sigma and U^T Y (one-hot Y) from the smaller Gram matrix of F (n x d)."""
    n, d = f.shape
    if n <= d:
        sigma, u = np.linalg.eigh(f @ f.T)
        projected = _one_hot_products(u, labels, n_classes)
    else:
        sigma, v = np.linalg.eigh(f.T @ f)
        projected = v.T @ _one_hot_products(f, labels, n_classes)
    keep = sigma > max(float(sigma.max()), _TINY) * max(n, d) * np.finfo(np.float64).eps
    sigma = sigma[keep]
    projected = projected[keep]
    if n > d:
        projected = projected / np.sqrt(sigma)[:, None]
    return Spectrum(sigma, projected, n, d)


def _terms(sigma: FloatArray, x2: FloatArray, outside: float, t: float) -> tuple[float, ...]:
    """gamma, ||m||^2 and ||y - F m||^2 at alpha / beta = t."""
    shrink = sigma + t
    gamma = float(np.sum(sigma / shrink))
    m2 = float(np.sum(sigma * x2 / shrink**2))
    res2 = float(np.sum(x2 * (t / shrink) ** 2) + outside)
    return gamma, m2, res2


def log_evidence(
    spec: Spectrum, x2: FloatArray, outside: float, alpha: float, beta: float
) -> float:
    """log p(y | F, alpha, beta) of y = F w + noise, w ~ N(0, I/alpha), noise ~ N(0, I/beta)."""
    _, m2, res2 = _terms(spec.sigma, x2, outside, alpha / beta)
    log_det_a = float(np.sum(np.log(alpha + beta * spec.sigma)))
    log_det_a += (spec.d - spec.sigma.size) * np.log(alpha)
    return float(
        0.5 * spec.d * np.log(alpha)
        + 0.5 * spec.n * np.log(beta)
        - 0.5 * spec.n * np.log(2.0 * np.pi)
        - 0.5 * beta * res2
        - 0.5 * alpha * m2
        - 0.5 * log_det_a
    )


def fit_evidence(
    spec: Spectrum, column: int, y2: float, *, max_iter: int = 100, tol: float = 1e-6
) -> EvidenceFit:
    """MacKay's fixed point: gamma = sum beta s/(alpha + beta s), alpha = gamma / ||m||^2,
    beta = (n - gamma) / ||y - F m||^2, iterated until alpha / beta settles."""
    x2 = spec.projected_targets[:, column] ** 2
    outside = max(y2 - float(x2.sum()), 0.0)
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma, m2, res2 = _terms(spec.sigma, x2, outside, t)
        alpha = gamma / max(m2, _TINY)
        beta = max(spec.n - gamma, _TINY) / max(res2, _TINY)
        if abs(alpha / beta - t) <= tol * t:
            break
    return EvidenceFit(alpha, beta, log_evidence(spec, x2, outside, alpha, beta))


def logme(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> float:
    """LogME of You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
    Learning", ICML 2021.

    For each class c, the one-hot target y_c is modelled as ``y = F w + e`` with prior
    ``w ~ N(0, alpha^-1 I_d)`` and noise ``e ~ N(0, beta^-1 I_n)`` on the raw (uncentred)
    features F. The evidence ``p(y | F, alpha, beta) = N(y | 0, beta^-1 I + alpha^-1 F F^T)``
    is maximised by the paper's fixed-point iteration (via the eigen-decomposition of F^T F,
    equivalent to the SVD of F), and the score is the mean over classes of the maximum log
    evidence divided by n. ``log|A|`` includes the ``(d - rank) log alpha`` term of the null
    directions, so it stays exact when n < d. Higher is more transferable.
    """
    data = validate(features, labels, method="logme")
    spec = _spectrum(data.features, data.labels, data.n_classes)
    fits = [
        fit_evidence(spec, c, float(data.counts[c]), max_iter=max_iter, tol=tol)
        for c in range(data.n_classes)
    ]
    return float(np.mean([fit.log_evidence for fit in fits]) / spec.n)
