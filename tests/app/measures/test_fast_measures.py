"""The O(n·d) family against brute-force definitions and scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

import app.measures as am

SETTINGS = settings(max_examples=25, deadline=None)


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def brute(X: np.ndarray, T: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every additive measure by explicit loops over pairs."""
    Xn, Tn = unit(X), unit(T)
    n, k = len(Xn), len(Tn)
    a_inc = np.mean([np.mean([Xn[i] @ Tn[c] for c in range(k) if c != y[i]]) for i in range(n)])
    s_img = np.mean([Xn[i] @ Xn[j] for i in range(n) for j in range(i + 1, n)])
    s_txt = np.mean([Tn[i] @ Tn[j] for i in range(k) for j in range(i + 1, k)])
    return {
        "inter_modal": a_inc,
        "intra_images": s_img,
        "intra_texts": s_txt,
        "correct_alignment": np.mean([Xn[i] @ Tn[y[i]] for i in range(n)]),
        "modality_gap": np.linalg.norm(Xn.mean(0) - Tn.mean(0)),
        "iimm": (a_inc + s_img) / 2,
    }


def sklearn_clusters(X: np.ndarray, T: np.ndarray) -> dict[str, float]:
    Z = np.vstack([unit(X.astype(np.float64)), unit(T.astype(np.float64))])
    lab = np.r_[np.zeros(len(X)), np.ones(len(T))]
    return {
        "silhouette_cosine": silhouette_score(Z, lab, metric="cosine"),
        "davies_bouldin": davies_bouldin_score(Z, lab),
        "calinski_harabasz": calinski_harabasz_score(Z, lab),
    }


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (X, T, y): n, k, d >= 2, duplicate rows, rows of very different norms,
    float16/32/64 storage (the brute force then sees the same rounded values)."""
    n, k, d = draw(st.integers(2, 25)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((draw(st.integers(1, n)), d)) + draw(st.floats(-2, 2))
    X = pool[rng.integers(0, len(pool), n)] * rng.uniform(0.01, 100, (n, 1))
    T = rng.standard_normal((k, d)) * rng.uniform(0.1, 10, (k, 1))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    X, T = X.astype(dtype), T.astype(dtype)
    norms = [np.linalg.norm(a.astype(np.float64), axis=1).min() for a in (X, T)]
    assume(min(norms) > 1e-6)
    return X, T, rng.integers(0, k, n)


@SETTINGS
@given(problems())
def test_additive_measures_match_brute_force(p: tuple[np.ndarray, ...]) -> None:
    X, T, y = p
    got = am.compute_measures(X, T, y, block_rows=7)
    for name, want in brute(X.astype(np.float64), T.astype(np.float64), y).items():
        assert got[name] == pytest.approx(want, rel=1e-9, abs=1e-9), name


@SETTINGS
@given(problems())
def test_cluster_measures_match_sklearn(p: tuple[np.ndarray, ...]) -> None:
    X, T, y = p
    Z = np.vstack([unit(X.astype(np.float64)), unit(T.astype(np.float64))])
    lab = np.r_[np.zeros(len(X)), np.ones(len(T))]
    within = sum(((Z[lab == c] - Z[lab == c].mean(0)) ** 2).sum() for c in (0, 1))
    assume(within > 1e-6)
    got = am.compute_measures(X, T, y, block_rows=5)
    for name, want in sklearn_clusters(X, T).items():
        assert got[name] == pytest.approx(want, rel=1e-7, abs=1e-8), name


def test_single_measure_functions_agree_with_compute_measures() -> None:
    rng = np.random.default_rng(1)
    X, T, y = (
        rng.standard_normal((40, 5)) + 0.5,
        rng.standard_normal((4, 5)),
        rng.integers(0, 4, 40),
    )
    every = am.compute_measures(X, T, y)
    assert set(every) == set(am.FAST_MEASURES)
    assert am.iimm(X, T, y) == pytest.approx(every["iimm"], rel=1e-12)
    assert am.inter_modal(X, T, y) == pytest.approx(every["inter_modal"], rel=1e-12)
    assert am.correct_alignment(X, T, y) == pytest.approx(every["correct_alignment"], rel=1e-12)
    assert am.intra_images(X) == pytest.approx(every["intra_images"], rel=1e-12)
    assert am.intra_texts(T) == pytest.approx(every["intra_texts"], rel=1e-12)
    assert am.modality_gap(X, T) == pytest.approx(every["modality_gap"], rel=1e-12)
    assert am.silhouette_cosine(X, T) == pytest.approx(every["silhouette_cosine"], rel=1e-12)
    assert am.davies_bouldin(X, T) == pytest.approx(every["davies_bouldin"], rel=1e-12)
    assert am.calinski_harabasz(X, T) == pytest.approx(every["calinski_harabasz"], rel=1e-12)


def reference_blocked_iimm(X: np.ndarray, T: np.ndarray, y: np.ndarray, block: int = 8) -> float:
    """The published reference's way: O(n²) pairs in blocks (mean over i<j), k x n loop."""
    Xn, Tn = unit(X), unit(T)
    n = len(Xn)
    pair_sum = 0.0
    for start in range(0, n, block):
        sims = Xn[start : start + block] @ Xn.T
        rows = np.arange(start, min(start + block, n))[:, None]
        pair_sum += sims[np.arange(n)[None, :] > rows].sum()
    intra = pair_sum / (n * (n - 1) / 2)
    logits = Tn @ Xn.T  # k x n
    inter = []
    for i in range(n):
        wrong = np.delete(logits[:, i], y[i])
        inter.append(wrong.mean())
    return (float(np.mean(inter)) + intra) / 2


def test_iimm_matches_reference_blocked_computation() -> None:
    rng = np.random.default_rng(7)
    X, T, y = (
        rng.standard_normal((203, 16)) + 0.3,
        rng.standard_normal((9, 16)),
        rng.integers(0, 9, 203),
    )
    assert am.iimm(X, T, y) == pytest.approx(reference_blocked_iimm(X, T, y), rel=1e-10)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_input_is_exact_in_float64(dtype: type) -> None:
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((30, 6)) + 1).astype(dtype)
    T = rng.standard_normal((3, 6)).astype(dtype)
    y = rng.integers(0, 3, 30)
    got = am.compute_measures(X, T, y)
    want = brute(X.astype(np.float64), T.astype(np.float64), y)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-10, abs=1e-12), name


def test_memmap_input_gives_the_same_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    X = (rng.standard_normal((500, 8)) + 0.5).astype(np.float16)
    T = rng.standard_normal((5, 8)).astype(np.float16)
    y = rng.integers(0, 5, 500)
    for name, a in (("X", X), ("T", T), ("y", y)):
        np.save(tmp_path / f"{name}.npy", a)
    Xm, Tm, ym = (np.load(tmp_path / f"{v}.npy", mmap_mode="r") for v in ("X", "T", "y"))
    in_memory = am.compute_measures(X, T, y)
    mapped = am.compute_measures(Xm, Tm, ym, block_rows=64)
    assert mapped == pytest.approx(in_memory, rel=1e-12)


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(5)
    X, T, y = (
        rng.standard_normal((50, 4)) * 3,
        rng.standard_normal((3, 4)) * 2,
        rng.integers(0, 3, 50),
    )
    copies = (X.copy(), T.copy(), y.copy())
    am.compute_measures(X, T, y, (*am.FAST_MEASURES, "silhouette_euclidean", "entropy"))
    am.bootstrap_ci(X, T, y, n_boot=10)
    am.stable_sample_size(X, T, y)
    for before, after in zip(copies, (X, T, y), strict=True):
        np.testing.assert_array_equal(before, after)


def test_memory_stays_bounded_for_many_images() -> None:
    """No n x n or k x n matrix: peak traced memory far below k·n float64."""
    import tracemalloc

    rng = np.random.default_rng(6)
    n, k, d = 40_000, 60, 16
    X = rng.standard_normal((n, d)).astype(np.float32)
    T = rng.standard_normal((k, d)).astype(np.float32)
    y = rng.integers(0, k, n)
    tracemalloc.start()
    am.compute_measures(X, T, y, block_rows=1024)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < k * n * 8 / 4  # a k x n float64 matrix would be 19 MB
