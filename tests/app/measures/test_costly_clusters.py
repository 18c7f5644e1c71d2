"""Euclidean silhouette (exact and sampled) and the KDE clustering entropy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.metrics import silhouette_score

import app.measures as am


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def problem(seed: int, n: int = 150, k: int = 7, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) + 0.7, rng.standard_normal((k, d)) * 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_euclidean_silhouette_matches_sklearn(seed: int) -> None:
    X, T = problem(seed)
    Z = np.vstack([unit(X), unit(T)])
    lab = np.r_[np.zeros(len(X)), np.ones(len(T))]
    want = silhouette_score(Z, lab, metric="euclidean")
    assert am.silhouette_euclidean(X, T, block_rows=32) == pytest.approx(want, abs=1e-7)


def test_sample_covering_everything_is_exact() -> None:
    X, T = problem(3, n=40, k=5)
    exact = am.silhouette_euclidean(X, T)
    est, lo, hi = am.silhouette_euclidean_ci(X, T, sample=40)
    assert est == pytest.approx(exact, rel=1e-9) and lo == pytest.approx(hi)


def test_sampled_interval_covers_the_exact_value() -> None:
    X, T = problem(4, n=400, k=30)
    exact = am.silhouette_euclidean(X, T)
    covered = 0
    for seed in range(20):
        est, lo, hi = am.silhouette_euclidean_ci(X, T, sample=25, seed=seed)
        assert lo <= est <= hi
        covered += lo <= exact <= hi
    assert covered >= 16
    assert am.silhouette_euclidean(X, T, sample=25, seed=3) == pytest.approx(
        am.silhouette_euclidean_ci(X, T, sample=25, seed=3)[0]
    )


def brute_entropy(Z: np.ndarray) -> float:
    m, d = Z.shape
    h2 = (np.sqrt(Z.var(axis=0, ddof=1).mean()) * m ** (-1 / (d + 4))) ** 2
    logs = []
    for i in range(m):
        terms = [
            -np.sum((Z[i] - Z[j]) ** 2) / (2 * h2) - 0.5 * d * np.log(2 * np.pi * h2)
            for j in range(m)
            if j != i
        ]
        logs.append(logsumexp(terms) - np.log(m - 1))
    return -float(np.mean(logs))


def test_entropy_is_the_weighted_leave_one_out_kde_entropy() -> None:
    X, T = problem(5, n=30, k=6, d=3)
    want = (30 * brute_entropy(unit(X)) + 6 * brute_entropy(unit(T))) / 36
    assert am.clustering_entropy(X, T, sample=None) == pytest.approx(want, rel=1e-10)


def test_entropy_of_a_tighter_cluster_is_lower() -> None:
    rng = np.random.default_rng(6)
    T = rng.standard_normal((5, 4))
    wide = rng.standard_normal((300, 4))
    tight = np.array([1.0, 0, 0, 0]) + 0.05 * rng.standard_normal((300, 4))
    assert am.clustering_entropy(tight, T) < am.clustering_entropy(wide, T)
