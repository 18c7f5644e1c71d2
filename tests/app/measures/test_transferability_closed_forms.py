"""Transferability scores against independent closed forms and brute-force computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from sklearn.covariance import ledoit_wolf, ledoit_wolf_shrinkage
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from app.measures.transferability import emms, gbc, hscore, logme, ncti_terms, sfda, transrate
from app.measures.transferability._common import class_means, pca_project
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


@pytest.mark.parametrize("variant", ["definition", "iimm_reference"])
def test_transrate_matches_explicit_formula(variant: str) -> None:
    x, y = task(1, n=90, d=6, k=3, imbalanced=True)
    eps = 1e-3
    z = x - x.mean(axis=0)

    def rate(m: np.ndarray) -> float:
        return 0.5 * np.linalg.slogdet(np.eye(6) + m.T @ m / (len(m) * eps))[1]

    counts = np.bincount(y)
    weights = counts / counts.sum() if variant == "definition" else np.full(3, 1 / 3)
    expected = rate(z) - sum(w * rate(z[y == c]) for c, w in enumerate(weights))
    assert transrate(x, y, eps=eps, variant=variant) == pytest.approx(expected, rel=1e-10)


def test_transrate_variants_agree_on_balanced_classes() -> None:
    x, y = task(2, n=60, d=5, k=3)
    assert transrate(x, y) == pytest.approx(transrate(x, y, variant="iimm_reference"))


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


def numerically_maximised_log_evidence(f: np.ndarray, t: np.ndarray) -> float:
    """max over (log alpha, log beta) of the explicit n x n evidence, from several starts.

    Searched over (log(alpha / beta), log beta), with log beta up to 40: where the supremum is
    the beta -> infinity limit (n <= d), the evidence at beta = e^40 is within ~e^-40 of it.
    The covariance is (I + F F^T beta / alpha) / beta; its condition number stays below
    cond(F F^T) when n <= d, and alpha / beta >= e^-12 keeps it below ~1e6 when n > d (where
    the maximum is interior, which is checked).
    """
    n, d = f.shape
    lowest = -30.0 if n <= d else -12.0
    best = -np.inf
    for start in [(0.0, 0.0), (-8.0, 12.0), (-2.0, 30.0)]:
        found = optimize.minimize(
            lambda p: -brute_force_log_evidence(f, t, np.exp(p[0] + p[1]), np.exp(p[1])),
            np.array(start),
            method="L-BFGS-B",
            bounds=[(lowest, 30.0), (-30.0, 40.0)],
            options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 400},
        )
        assert n <= d or found.x[0] > lowest + 1.0
        best = max(best, -float(found.fun))
    return best


@pytest.mark.parametrize(
    ("n", "d", "seed"),
    [(40, 5, 7), (60, 60, 3), (12, 20, 7), (8, 30, 11), (20, 64, 5), (3, 4, 0)],
)
def test_logme_is_the_numerically_maximised_exact_evidence(n: int, d: int, seed: int) -> None:
    f, y = task(seed, n=n, d=d, k=3)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)  # unit rows, like CLIP embeddings
    per_class = []
    for c in range(3):
        target = (y == c).astype(float)
        per_class.append(numerically_maximised_log_evidence(f, target) / n)
    assert logme(f, y) == pytest.approx(np.mean(per_class), rel=1e-7, abs=1e-9)


def test_logme_of_the_issue_example_is_the_beta_to_infinity_limit() -> None:
    """n = 3 < d = 4: the old fixed point stopped at the w = 0 solution (-1.030289)."""
    f = np.array(
        [
            [0.568759, -0.242563, -0.342292, -0.707469],
            [-0.418008, 0.906341, 0.047236, 0.039809],
            [0.530769, 0.178044, -0.567481, -0.603779],
        ]
    )
    y = np.array([0, 1, 0])
    assert logme(f, y) == pytest.approx(-0.717637, abs=5e-7)
    spec = _spectrum(f, y, 2)
    # Class 0: the maximum is the beta -> infinity limit, whose closed form is the
    # covariance F F^T / alpha with alpha = n / y^T (F F^T)^-1 y.
    target = (y == 0).astype(float)
    alpha = 3 / (target @ np.linalg.solve(f @ f.T, target))
    _, logdet = np.linalg.slogdet(f @ f.T)
    limit = 1.5 * np.log(alpha) - 0.5 * logdet - 1.5 - 1.5 * np.log(2 * np.pi)
    assert fit_evidence(spec, 0, 2.0).log_evidence == pytest.approx(limit, rel=1e-9)
    assert numerically_maximised_log_evidence(f, target) == pytest.approx(limit, rel=1e-9)
    # Class 1: an interior maximum.
    target = (y == 1).astype(float)
    assert fit_evidence(spec, 1, 1.0).log_evidence == pytest.approx(
        numerically_maximised_log_evidence(f, target), rel=1e-9
    )


@pytest.mark.parametrize("seed", range(6))
def test_logme_never_below_the_fixed_points_and_limits_at_d_512(seed: int) -> None:
    """Small datasets with real-sized embeddings (n = 20..200 < d = 512): the returned
    evidence of every class is at least the exact evidence at any hyper-parameters tried."""
    rng = np.random.default_rng(seed)
    n = [20, 35, 50, 200, 20, 50][seed]
    f = rng.normal(size=(n, 512))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    y = np.arange(n) % 4
    spec = _spectrum(f, y, 4)
    for c in range(4):
        target = (y == c).astype(float)
        fit = fit_evidence(spec, c, float(target.sum()))
        assert np.isfinite(fit.log_evidence)
        for log_alpha in np.linspace(-4.0, 6.0, 6):
            for log_beta in (0.0, 5.0, 20.0):
                tried = brute_force_log_evidence(f, target, np.exp(log_alpha), np.exp(log_beta))
                assert tried <= fit.log_evidence + 1e-9 * abs(fit.log_evidence)


def test_logme_is_infinite_when_the_evidence_is_unbounded() -> None:
    """Duplicated rows with equal labels and n <= d: y lies in the span of a rank-deficient
    F, so the evidence grows without bound as beta -> infinity."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 10))
    f = np.concatenate([base, base])
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    assert logme(f, y) == np.inf
    target = (y == 0).astype(float)
    assert brute_force_log_evidence(f, target, 1.0, 1e8) > brute_force_log_evidence(
        f, target, 1.0, 1e4
    )


def test_logme_evidence_matches_explicit_marginal_likelihood() -> None:
    f, y = task(7, n=40, d=5, k=3)
    spec = _spectrum(f, y, 3)
    for c in range(3):
        target = (y == c).astype(float)
        fit = fit_evidence(spec, c, float(target.sum()))
        assert fit.log_evidence == pytest.approx(
            brute_force_log_evidence(f, target, fit.alpha, fit.beta), rel=1e-10
        )


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


def test_gbc_keeps_coefficients_far_below_machine_epsilon() -> None:
    """Two classes of variance 1/4 with means 10 apart: D_B = 100 / 8 / (1/4) = 50, so
    GBC = -2 exp(-50); subtracting the self-coefficient 1 from a sum lost it (-0.0)."""
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = np.array([0, 0, 1, 1])
    assert gbc(x, y, pca_dim=None) == pytest.approx(-2.0 * np.exp(-50.0), rel=1e-12)
    assert gbc(x, y, pca_dim=None) == pytest.approx(-3.8575e-22, rel=1e-4)


def test_gbc_orders_a_pool_of_well_separated_models() -> None:
    """Models whose classes are ever further apart get ever higher (distinct) GBC, even when
    every coefficient is far below 1e-16."""
    rng = np.random.default_rng(4)
    y = np.arange(120) % 4
    noise = rng.normal(size=(120, 8))
    centres = rng.normal(size=(4, 8))
    values = [gbc(centres[y] * scale + noise, y) for scale in (4.0, 6.0, 8.0, 10.0)]
    assert all(v < 0.0 for v in values)
    assert values == sorted(values) and len(set(values)) == 4


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


def test_emms_iimm_reference_is_one_alternation_on_z_scored_data() -> None:
    """Two sources: W by least squares on the equal-weight target, then the weights by
    unconstrained least squares projected on the simplex, residual of that W against the
    re-weighted target, times D / n (the program's `/ N*D2`)."""
    x, y = task(21, n=50, d=6, k=4)
    rng = np.random.default_rng(22)
    sources = [rng.normal(size=(4, 5)), rng.normal(size=(4, 5))]

    def z(v: np.ndarray) -> np.ndarray:
        return (v - v.mean(axis=0)) / (v.std(axis=0) + 1e-8)

    xz = z(x)
    targets = np.stack([z(s[y]) for s in sources], axis=2)
    start = targets.mean(axis=2)
    w = np.linalg.lstsq(xz, start, rcond=None)[0]
    t = np.linalg.lstsq(targets.reshape(-1, 2), (xz @ w).reshape(-1), rcond=None)[0]
    combined = targets @ project_simplex(t)
    expected = -np.sum((xz @ w - combined) ** 2) / 50 * 5
    assert emms(x, y, sources, variant="iimm_reference") == pytest.approx(expected, rel=1e-10)
    assert emms(x, y, sources, variant="authors") == emms(x, y, sources, variant="iimm_reference")


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
    model = fit_regularised_fda(pca_project(x, 64), y, 3)
    h = model.transform(pca_project(x, 64))
    h = h - h.mean(axis=0)
    assert terms.seli == pytest.approx(np.linalg.norm(h, ord="nuc"), rel=1e-10)
    proba = model.predict_proba(pca_project(x, 64))
    assert terms.ncc == pytest.approx(np.mean(proba[np.arange(90), y]), rel=1e-12)
    assert 0.0 <= terms.ncc <= 1.0
    nuclear = sum(np.linalg.norm(proba[y == c], ord="nuc") for c in range(3))
    assert terms.vc == pytest.approx(np.log(nuclear), rel=1e-10)


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
