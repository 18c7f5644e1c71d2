"""Transferability scores against independent closed forms and brute-force computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from sklearn.covariance import ledoit_wolf, ledoit_wolf_shrinkage
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from app.measures.transferability import emms, gbc, hscore, logme, ncti_terms, sfda, transrate
from app.measures.transferability._common import class_means
from app.measures.transferability.emms import project_simplex
from app.measures.transferability.gbc import bhattacharyya_coefficient
from app.measures.transferability.hscore import ledoit_wolf_shrinkage as our_shrinkage
from app.measures.transferability.logme import _spectrum, fit_evidence
from app.measures.transferability.sfda import fit_regularised_fda
from app.measures.transferability.transrate import coding_rate


def task(seed: int, n: int, d: int, k: int, imbalanced: bool = False):
    rng = np.random.default_rng(seed)
    y = (
        rng.choice(k, size=n, p=np.arange(1, k + 1) / np.arange(1, k + 1).sum())
        if imbalanced
        else np.arange(n) % k
    )
    x = rng.normal(size=(k, d))[y] * 1.5 + rng.normal(size=(n, d))
    return x, y


# --- TransRate -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(50, 8), (6, 20)])
def test_coding_rate_matches_slogdet(n: int, d: int) -> None:
    z = np.random.default_rng(0).normal(size=(n, d))
    _, logdet = np.linalg.slogdet(np.eye(d) + z.T @ z / (n * 1e-2))
    assert coding_rate(z, 1e-2) == pytest.approx(0.5 * logdet, rel=1e-10)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_transrate_matches_explicit_formula(variant: str) -> None:
    x, y = task(1, n=90, d=6, k=3, imbalanced=True)
    eps = 1e-3
    z = x - x.mean(axis=0)

    def rate(m: np.ndarray) -> float:
        return 0.5 * np.linalg.slogdet(np.eye(6) + m.T @ m / (len(m) * eps))[1]

    counts = np.bincount(y)
    weights = counts / counts.sum() if variant == "paper" else np.full(3, 1 / 3)
    expected = rate(z) - sum(w * rate(z[y == c]) for c, w in enumerate(weights))
    assert transrate(x, y, eps=eps, variant=variant) == pytest.approx(expected, rel=1e-10)


def test_transrate_variants_agree_on_balanced_classes() -> None:
    x, y = task(2, n=60, d=5, k=3)
    assert transrate(x, y, variant="paper") == pytest.approx(transrate(x, y, variant="code"))


# --- H-score ---------------------------------------------------------------------------------


def test_hscore_matches_direct_small_matrix_computation() -> None:
    x, y = task(3, n=40, d=4, k=3, imbalanced=True)
    g = np.array([x[y == c].mean(axis=0) for c in y])  # E[f | Y] for every sample
    expected = np.trace(np.linalg.inv(np.cov(x, rowvar=False)) @ np.cov(g, rowvar=False))
    assert hscore(x, y) == pytest.approx(expected, rel=1e-9)


def test_hscore_pseudo_inverse_ignores_duplicated_columns() -> None:
    x, y = task(4, n=40, d=4, k=3)
    doubled = np.concatenate([x, x[:, :1]], axis=1)
    assert hscore(doubled, y) == pytest.approx(hscore(x, y), rel=1e-6)


def test_ledoit_wolf_shrinkage_matches_scikit_learn() -> None:
    x, _ = task(5, n=30, d=10, k=3)
    centred = x - x.mean(axis=0)
    assert our_shrinkage(centred) == pytest.approx(
        ledoit_wolf_shrinkage(centred, assume_centered=True), rel=1e-10
    )


def test_shrinkage_hscore_matches_explicit_formula() -> None:
    x, y = task(6, n=30, d=10, k=3)
    cov_shrunk, alpha = ledoit_wolf(x)
    g = class_means(x, y, 3)[y]
    cov_g = np.cov(g, rowvar=False, bias=True)
    expected = np.trace(np.linalg.inv(cov_shrunk) @ ((1 - alpha) * cov_g))
    assert hscore(x, y, shrinkage=True) == pytest.approx(expected, rel=1e-9)


# --- LogME -----------------------------------------------------------------------------------


def brute_force_log_evidence(f: np.ndarray, t: np.ndarray, alpha: float, beta: float) -> float:
    """log N(t | 0, I/beta + F F^T / alpha) with explicit inverse and determinant."""
    n = len(t)
    cov = np.eye(n) / beta + f @ f.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + t @ np.linalg.inv(cov) @ t)


@pytest.mark.parametrize(("n", "d"), [(40, 5), (12, 20)])
def test_logme_evidence_matches_explicit_marginal_likelihood(n: int, d: int) -> None:
    f, y = task(7, n=n, d=d, k=3)
    spec = _spectrum(f, y, 3)
    per_class = []
    for c in range(3):
        target = (y == c).astype(float)
        fit = fit_evidence(spec, c, float(target.sum()))
        # With n < d the targets are interpolated and beta grows large, which leaves the
        # explicit n x n covariance ill-conditioned (cond ~ 1e8): a looser tolerance there.
        assert fit.log_evidence == pytest.approx(
            brute_force_log_evidence(f, target, fit.alpha, fit.beta), rel=1e-8 if n > d else 1e-6
        )
        per_class.append(fit.log_evidence / n)
        # The fixed point maximises the evidence: nearby hyper-parameters do no better. (With
        # n < d the supremum is approached as beta -> infinity, so only alpha is checked, and
        # the evidence is so flat there that the fixed point's own tolerance, 1e-6 relative,
        # bounds how close it gets: the LAPACK build decides which side it stops on.)
        steps = [(1.2, 1.0), (1 / 1.2, 1.0)] + ([(1.0, 1.2), (1.0, 1 / 1.2)] if n > d else [])
        slack = 1e-9 if n > d else 1e-6 * abs(fit.log_evidence)
        for da, db in steps:
            nearby = brute_force_log_evidence(f, target, fit.alpha * da, fit.beta * db)
            assert nearby <= fit.log_evidence + slack
    assert logme(f, y) == pytest.approx(np.mean(per_class), rel=1e-10)


# --- GBC -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m1", "v1", "m2", "v2"), [(0.0, 1.0, 1.5, 2.0), (-1.0, 0.3, 0.4, 0.3)])
def test_bhattacharyya_coefficient_matches_numerical_integral_1d(
    m1: float, v1: float, m2: float, v2: float
) -> None:
    p, q = stats.norm(m1, np.sqrt(v1)), stats.norm(m2, np.sqrt(v2))
    overlap, _ = integrate.quad(lambda s: np.sqrt(p.pdf(s) * q.pdf(s)), -30, 30)
    ours = bhattacharyya_coefficient(
        np.array([m1]), np.array([v1]), np.array([[m2]]), np.array([[v2]])
    )
    assert ours[0] == pytest.approx(overlap, rel=1e-8)


def test_bhattacharyya_coefficient_matches_numerical_integral_2d() -> None:
    m1, v1, m2, v2 = (
        np.array([0.0, 1.0]),
        np.array([1.0, 0.5]),
        np.array([0.7, 0.2]),
        np.array([2.0, 0.8]),
    )
    p = stats.multivariate_normal(m1, np.diag(v1))
    q = stats.multivariate_normal(m2, np.diag(v2))
    # Trapezoid rule on a fine grid: spectrally accurate for these smooth, decaying integrands.
    grid = np.linspace(-10, 10, 1201)
    points = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1)
    integrand = np.sqrt(p.pdf(points) * q.pdf(points))
    overlap = np.trapezoid(np.trapezoid(integrand, grid, axis=1), grid)
    ours = bhattacharyya_coefficient(m1, v1, m2[None], v2[None])
    assert ours[0] == pytest.approx(overlap, rel=1e-6)


@pytest.mark.parametrize("gaussian_type", ["spherical", "diagonal"])
def test_gbc_matches_pairwise_brute_force(gaussian_type: str) -> None:
    x, y = task(8, n=60, d=3, k=3)
    means = [x[y == c].mean(axis=0) for c in range(3)]
    variances = [x[y == c].var(axis=0) for c in range(3)]
    if gaussian_type == "spherical":
        variances = [np.full(3, v.mean()) for v in variances]
    total = 0.0
    for i in range(3):
        for j in range(3):
            if i != j:
                s = (variances[i] + variances[j]) / 2
                db = np.sum((means[i] - means[j]) ** 2 / s) / 8 + 0.5 * np.log(
                    np.prod(s) / np.sqrt(np.prod(variances[i]) * np.prod(variances[j]))
                )
                total += np.exp(-db)
    assert gbc(x, y, gaussian_type=gaussian_type, pca_dim=None) == pytest.approx(-total, rel=1e-9)


def test_gbc_pca_keeps_at_most_requested_dimensions() -> None:
    x, y = task(9, n=60, d=10, k=3)
    assert gbc(x, y, pca_dim=2) != pytest.approx(gbc(x, y, pca_dim=None))
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(10, 10)))[0]
    # PCA makes the score independent of how the feature axes are rotated.
    assert gbc(x @ rotation, y, gaussian_type="diagonal", pca_dim=10) == pytest.approx(
        gbc(x, y, gaussian_type="diagonal", pca_dim=10), rel=1e-8
    )


# --- EMMS ------------------------------------------------------------------------------------


def residual(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    w, *_ = np.linalg.lstsq(x, z, rcond=None)
    return x @ w - z


def unit_rows(t: np.ndarray) -> np.ndarray:
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def test_emms_single_source_is_least_squares_residual() -> None:
    x, y = task(10, n=50, d=6, k=4)
    t = np.random.default_rng(1).normal(size=(4, 5))
    expected = -np.sum(residual(x, unit_rows(t)[y]) ** 2) / 50
    assert emms(x, y, t) == pytest.approx(expected, rel=1e-9)


def test_emms_matches_exact_simplex_optimum() -> None:
    x, y = task(11, n=60, d=5, k=4)
    rng = np.random.default_rng(2)
    sources = [rng.normal(size=(4, 6)) for _ in range(3)]
    zs = [unit_rows(s)[y] for s in sources]

    def objective(w: np.ndarray) -> float:
        return float(np.sum(residual(x, sum(wi * z for wi, z in zip(w, zs, strict=True))) ** 2))

    best = optimize.minimize(
        objective,
        np.full(3, 1 / 3),
        method="SLSQP",
        bounds=[(0, 1)] * 3,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert emms(x, y, sources, max_iter=500) == pytest.approx(-best.fun / 60, rel=1e-5)
    # One alternation can only be worse than (or equal to) the converged optimum.
    assert emms(x, y, sources, max_iter=1) <= emms(x, y, sources, max_iter=500) + 1e-12


def test_project_simplex_is_the_euclidean_projection() -> None:
    v = np.array([0.8, -0.3, 0.9, 0.1])
    p = project_simplex(v)
    assert p.sum() == pytest.approx(1.0) and np.all(p >= 0)
    for _ in range(200):
        other = project_simplex(np.random.default_rng(_).normal(size=4))
        assert np.sum((v - p) ** 2) <= np.sum((v - other) ** 2) + 1e-12


# --- SFDA / NCTI -----------------------------------------------------------------------------


def test_regularised_fda_posterior_matches_shrinkage_lda() -> None:
    x, y = task(12, n=80, d=6, k=4, imbalanced=True)
    model = fit_regularised_fda(x, y, 4, shrinkage=0.3)
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.3).fit(x, y)
    np.testing.assert_allclose(model.predict_proba(x), lda.predict_proba(x), atol=1e-9)


def test_ncti_terms_are_on_their_documented_scales() -> None:
    x, y = task(13, n=90, d=8, k=3)
    terms = ncti_terms(x, y)
    assert 0.0 < terms.seli_normalised <= 1.0 + 1e-12
    assert 0.0 <= terms.ncc <= 1.0
    assert terms.vc == pytest.approx(terms.vc_normalised + np.log(np.sum(np.sqrt([30] * 3))))


def test_sfda_matches_a_pipeline_of_shrinkage_lda() -> None:
    x, y = task(14, n=90, d=5, k=3, imbalanced=True)
    within = x - class_means(x, y, 3)[y]
    lam = np.exp(-5.0 * np.linalg.eigvalsh(within.T @ within / len(x))[-1])
    first = LinearDiscriminantAnalysis(solver="eigen", shrinkage=lam).fit(x, y)
    proba = first.predict_proba(x)
    soft = np.exp(proba) / np.exp(proba).sum(axis=1, keepdims=True)
    confidence = soft[np.arange(len(y)), y][:, None]
    means = class_means(x, y, 3)
    others = np.array([(means.sum(axis=0) - means[c]) / 2 for c in range(3)])
    mixed = confidence * x + (1 - confidence) * others[y]
    second = LinearDiscriminantAnalysis(solver="eigen", shrinkage=lam).fit(mixed, y)
    expected = second.predict_proba(mixed)[np.arange(len(y)), y].mean()
    assert sfda(x, y) == pytest.approx(expected, rel=1e-9)
