"""LogME (You et al., ICML 2021): logarithm of the maximum evidence of a Bayesian linear model."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ._common import FloatArray, IntArray, validate

LogMEVariant = Literal["definition", "authors", "authors_icml"]

_TINY = 1e-300
_EPS = np.finfo(np.float64).eps
#: thuml/LogME adds this to ||m||^2 and ||y - F m||^2 in its updates (and its ICML evidence).
_AUTHORS_EPSILON = 1e-5
#: thuml/LogME's iteration cap, and its stopping rules on |t' - t| / t.
_AUTHORS_MAX_ITER = 11
_AUTHORS_TOL = 1e-3
_AUTHORS_ICML_TOL = 0.01
#: thuml/LogME keeps singular values of F above this (absolute) when n > d.
_AUTHORS_RANK_CUTOFF = 1e-10


@dataclass(frozen=True)
class Spectrum:
    """Eigen-decomposition of F^T F restricted to its range: sigma_i = s_i^2 and U^T y."""

    sigma: FloatArray
    projected_targets: FloatArray
    n: int
    d: int


@dataclass(frozen=True)
class EvidenceFit:
    """Maximising hyper-parameters of one target and its log evidence (not divided by n).

    ``beta`` is ``inf`` when the maximum is the ``beta -> infinity`` limit (the target lies in
    the span of F and F has full row rank); ``alpha`` is ``inf`` for the ``w = 0`` limit.
    """

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
    keep = sigma > max(float(sigma.max()), _TINY) * max(n, d) * _EPS
    sigma = sigma[keep]
    projected = projected[keep]
    if n > d:
        projected = projected / np.sqrt(sigma)[:, None]
    return Spectrum(sigma, projected, n, d)


def _terms(sigma: FloatArray, x2: FloatArray, outside: float, t: float) -> tuple[float, ...]:
    """gamma, n_range - gamma, ||m||^2 and ||y - F m||^2 at alpha / beta = t.

    ``n_range - gamma = sum_i t / (sigma_i + t)`` is summed directly rather than subtracted,
    so it keeps its relative accuracy when t << sigma (where gamma rounds to the rank).
    """
    inv = 1.0 / (sigma + t)
    inv2 = inv * inv
    gamma = float(sigma @ inv)
    free = t * float(inv.sum())
    m2 = float((sigma * x2) @ inv2)
    res2 = t * t * float(x2 @ inv2) + outside
    return gamma, free, m2, res2


def _evidence(spec: Spectrum, alpha: float, beta: float, m2: float, res2: float) -> float:
    """The log evidence at (alpha, beta) from ||m||^2 and ||y - F m||^2 at t = alpha / beta."""
    log_det_a = float(np.log(alpha + beta * spec.sigma).sum())
    log_det_a += (spec.d - spec.sigma.size) * np.log(alpha)
    return float(
        0.5 * spec.d * np.log(alpha)
        + 0.5 * spec.n * np.log(beta)
        - 0.5 * spec.n * np.log(2.0 * np.pi)
        - 0.5 * beta * res2
        - 0.5 * alpha * m2
        - 0.5 * log_det_a
    )


def log_evidence(
    spec: Spectrum, x2: FloatArray, outside: float, alpha: float, beta: float
) -> float:
    """log p(y | F, alpha, beta) of y = F w + noise, w ~ N(0, I/alpha), noise ~ N(0, I/beta).

    Equals ``log N(y | 0, I/beta + F F^T / alpha)``, written with the spectrum of F^T F:
    ``d/2 log a + n/2 log b - b/2 ||y - F m||^2 - a/2 ||m||^2 - 1/2 log|A| - n/2 log 2 pi``
    with ``A = a I + b F^T F`` (its ``d - rank`` null directions contribute ``log a`` each).
    """
    _, _, m2, res2 = _terms(spec.sigma, x2, outside, alpha / beta)
    return _evidence(spec, alpha, beta, m2, res2)


def _interpolating_limit(spec: Spectrum, x2: FloatArray) -> EvidenceFit:
    """The beta -> infinity limit when F has full row rank (so y = F w exactly for some w).

    The covariance tends to F F^T / alpha, so ``log p -> n/2 log a - 1/2 sum_i log sigma_i
    - a/2 S - n/2 log 2 pi`` with ``S = sum_i x_i^2 / sigma_i = y^T (F F^T)^-1 y``; its
    maximum over alpha is at ``a = n / S``.
    """
    n = spec.n
    s = float(np.sum(x2 / spec.sigma))
    if s <= 0.0:  # y = 0: the evidence grows without bound as alpha -> infinity
        return EvidenceFit(math.inf, math.inf, math.inf)
    alpha = n / s
    value = 0.5 * n * (np.log(alpha) - 1.0 - np.log(2.0 * np.pi)) - 0.5 * np.sum(np.log(spec.sigma))
    return EvidenceFit(alpha, math.inf, float(value))


def _null_limit(n: int, y2: float) -> EvidenceFit:
    """The alpha -> infinity limit (w = 0): y ~ N(0, I/beta), maximal at beta = n / ||y||^2."""
    beta = n / y2
    return EvidenceFit(math.inf, beta, float(0.5 * n * (np.log(beta) - 1.0 - np.log(2.0 * np.pi))))


def fit_evidence(
    spec: Spectrum, column: int, y2: float, *, max_iter: int = 100, tol: float = 1e-6
) -> EvidenceFit:
    """The maximum over (alpha, beta) of the log evidence of target ``column``.

    MacKay's fixed point ``gamma = sum b s/(a + b s)``, ``a = gamma / ||m||^2``,
    ``b = (n - gamma) / ||y - F m||^2`` is iterated until a / b settles, with ``n - gamma``
    computed without cancellation; the best evidence seen along the way is kept, and
    compared with the two limits of the hyper-parameter space: ``beta -> infinity`` when y
    lies in the span of F (then the fixed point only creeps towards t = a/b = 0) and
    ``alpha -> infinity`` (w = 0). When y lies in the span of a rank-deficient F (r < n,
    e.g. duplicated rows with equal labels) the evidence has no maximum: it grows without
    bound as beta -> infinity, and ``log_evidence`` is ``inf``.
    """
    n, r = spec.n, spec.sigma.size
    x2 = spec.projected_targets[:, column] ** 2
    in_span = r == n
    outside = 0.0 if in_span else y2 - float(x2.sum())
    if not in_span and outside <= 4.0 * n * _EPS * y2:
        return EvidenceFit(0.0, math.inf, math.inf)
    outside = max(outside, 0.0)
    best = _null_limit(n, y2)
    if in_span:
        limit = _interpolating_limit(spec, x2)
        if limit.log_evidence > best.log_evidence:
            best = limit
    alpha, beta, previous = 1.0, 1.0, 1.0
    for step in range(max_iter + 1):
        t = alpha / beta
        gamma, free, m2, res2 = _terms(spec.sigma, x2, outside, t)
        if step > 0:  # the evidence of the pair the last update produced
            value = _evidence(spec, alpha, beta, m2, res2)
            if value > best.log_evidence:
                best = EvidenceFit(alpha, beta, value)
            if abs(t - previous) <= tol * previous or step == max_iter:
                break
        if m2 <= 0.0 or res2 <= 0.0:
            break
        previous = t
        alpha = gamma / m2
        beta = (n - r + free) / res2
    return best


def _authors_fixed_point(f: FloatArray, labels: IntArray, n_classes: int) -> float:
    """thuml/LogME ``LogME.fit`` (the fixed point of You et al., JMLR 2022), step by step.

    Differences from the definition: the SVD keeps ``min(n, d)`` singular values (n <= d) or
    those above 1e-10 (n > d), but ``d/2 log alpha`` counts all d prior directions, so the
    ``(d - rank) log alpha`` of the null directions is missing from ``log|A|`` (the score is
    inflated when n < d); the updates add 1e-5 to ||m||^2 and ||y - F m||^2; at most 11
    iterations, stopping when |t' - t| / t <= 1e-3; the evidence is taken with the new
    (alpha, beta) but ||m||^2 and ||y - F m||^2 of the previous t.
    """
    n, d = f.shape
    if n > d:
        eig, v = np.linalg.eigh(f.T @ f)
        eig, v = eig[::-1], v[:, ::-1]
        s = np.sqrt(np.clip(eig, 0.0, None))
        keep = s > _AUTHORS_RANK_CUTOFF
        s = s[keep]
        u = (f @ v[:, keep]) / s
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    evidences = []
    for c in range(n_classes):
        y = (labels == c).astype(np.float64)
        x2 = (u.T @ y) ** 2
        outside = float(y @ y) - float(x2.sum())
        alpha, beta = 1.0, 1.0
        for _ in range(_AUTHORS_MAX_ITER):
            t = alpha / beta
            gamma = float(np.sum(sigma / (sigma + t)))
            m2 = float(np.sum(sigma * x2 / (t + sigma) ** 2))
            res2 = float(np.sum(x2 / (1.0 + sigma / t) ** 2)) + outside
            alpha = gamma / (m2 + _AUTHORS_EPSILON)
            beta = (n - gamma) / (res2 + _AUTHORS_EPSILON)
            if abs(alpha / beta - t) / t <= _AUTHORS_TOL:
                break
        evidence = (
            0.5 * d * np.log(alpha)
            + 0.5 * n * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * sigma))
            - 0.5 * beta * res2
            - 0.5 * alpha * m2
            - 0.5 * n * np.log(2.0 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def _authors_icml(f: FloatArray, labels: IntArray, n_classes: int) -> float:
    """thuml/LogME ``_fit_icml`` (Algorithm 1 of the ICML paper), step by step.

    Differences from the definition: all d eigenvalues of F^T F (including the numerically
    zero ones) enter ``log|A|``; m is computed with the current (alpha, beta) and gamma with
    the previous ratio; 1e-5 is added to ||m||^2 and ||y - F m||^2 in the updates and in the
    evidence; at most 11 iterations, stopping when the ratio changes by less than 1 %.
    """
    n, d = f.shape
    eig, v = np.linalg.eigh(f.T @ f)
    s = np.clip(eig, 0.0, None)
    evidences = []
    for c in range(n_classes):
        y = (labels == c).astype(np.float64)
        projected = v.T @ (f.T @ y)
        alpha, beta = 1.0, 1.0
        lam = 1.0
        for _ in range(_AUTHORS_MAX_ITER):
            gamma = float(np.sum(s / (s + lam)))
            m = v @ (projected * beta / (alpha + beta * s))
            alpha_de = float(m @ m)
            alpha = gamma / (alpha_de + _AUTHORS_EPSILON)
            residual = y - f @ m
            beta_de = float(residual @ residual)
            beta = (n - gamma) / (beta_de + _AUTHORS_EPSILON)
            new_lam = alpha / beta
            if abs(new_lam - lam) / lam < _AUTHORS_ICML_TOL:
                break
            lam = new_lam
        evidence = (
            0.5 * d * np.log(alpha)
            + 0.5 * n * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * s))
            - 0.5 * beta * (beta_de + _AUTHORS_EPSILON)
            - 0.5 * alpha * (alpha_de + _AUTHORS_EPSILON)
            - 0.5 * n * np.log(2.0 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def logme(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    variant: LogMEVariant = "definition",
    max_iter: int = 100,
    tol: float = 1e-6,
) -> float:
    """LogME of You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
    Learning", ICML 2021.

    ``variant="definition"`` (default): for each class c, the one-hot target y_c is modelled
    as ``y = F w + e`` with prior ``w ~ N(0, alpha^-1 I_d)`` and noise
    ``e ~ N(0, beta^-1 I_n)`` on the raw (uncentred) features F. The evidence
    ``p(y | F, alpha, beta) = N(y | 0, beta^-1 I + alpha^-1 F F^T)`` is maximised over
    (alpha, beta) (see :func:`fit_evidence`: MacKay's fixed point on the spectrum of F^T F,
    the best evidence seen, and the closed-form ``beta -> infinity`` limit that is the maximum
    when n <= d and y lies in the span of F), and the score is the mean over classes of the
    maximum log evidence divided by n. ``log|A|`` includes the ``(d - rank) log alpha`` term
    of the null directions, so it is exact when n < d. It is ``inf`` when some class's target
    lies in the span of a rank-deficient F (the evidence is then unbounded).

    ``variant="authors"``: thuml/LogME's ``LogME.fit`` (the fixed-point algorithm of You et
    al., "Ranking and Tuning Pre-trained Models", JMLR 2022), with its choices listed in
    :func:`_authors_fixed_point`; ``variant="authors_icml"``: its ``_fit_icml``, the ICML
    paper's Algorithm 1 (:func:`_authors_icml`). Both agree with the definition to about
    1e-5 when n >> d; ``"authors"`` is inflated when n < d. The IIMM paper's code has no
    LogME, so there is no ``"iimm_reference"`` variant. Higher is more transferable.
    """
    if variant not in ("definition", "authors", "authors_icml"):
        raise ValueError(
            f"logme variant must be 'definition', 'authors' or 'authors_icml', got {variant!r}"
            + (" (the IIMM paper's code has no LogME)" if variant == "iimm_reference" else "")
        )
    data = validate(features, labels, method="logme")
    if variant == "authors":
        return _authors_fixed_point(data.features, data.labels, data.n_classes)
    if variant == "authors_icml":
        return _authors_icml(data.features, data.labels, data.n_classes)
    spec = _spectrum(data.features, data.labels, data.n_classes)
    fits = [
        fit_evidence(spec, c, float(data.counts[c]), max_iter=max_iter, tol=tol)
        for c in range(data.n_classes)
    ]
    return float(np.mean([fit.log_evidence for fit in fits]) / spec.n)
