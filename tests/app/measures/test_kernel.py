"""The C kernel of the two O(n·d) passes against the NumPy path and the definitions.

Every path (NumPy, the kernel's AVX2/F16C loops, its portable loops) must give the same
measures to float64 rounding, the same errors for the same bad rows, and the same rescue of
rows whose squared norm over- or underflows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import davies_bouldin_score, silhouette_score

import app.measures as am
from app.measures import _native
from app.measures.stats import accumulate

PATHS = ["numpy", "c-simd", "c-portable"]


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once per path of the passes."""
    with _native.forced(request.param != "numpy", simd=request.param == "c-simd"):
        yield request.param


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def data(n: int = 300, k: int = 5, d: int = 37, dtype: type = np.float16, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) + 0.3).astype(dtype)
    T = rng.standard_normal((k, d)).astype(dtype)
    return X, T, rng.integers(0, k, n)


def test_the_kernel_is_built_and_used_by_default(settings_env: Callable[[str, str], None]) -> None:
    # The install builds it (setup.py); a silently failed build would lose the speed.
    assert _native.available()
    assert am.kernel_info().startswith("c/")
    settings_env("IIMM_MEASURES_KERNEL", "numpy")
    assert am.kernel_info() == "numpy"
    assert not _native.supports(np.ones((3, 4), dtype=np.float32))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 40),
    k=st.integers(2, 6),
    d=st.integers(1, 40),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    block=st.sampled_from([None, 1, 3, 16]),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_path_matches_sklearn_and_the_others(
    n: int, k: int, d: int, dtype: type, block: int | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * rng.uniform(0.01, 100, (n, 1))).astype(dtype)
    T = rng.standard_normal((k, d)).astype(dtype)
    assume(np.linalg.norm(X.astype(float), axis=1).min() > 1e-3)
    assume(np.linalg.norm(T.astype(float), axis=1).min() > 1e-3)
    y = rng.integers(0, k, n)
    got = {}
    for p in PATHS:
        with _native.forced(p != "numpy", simd=p == "c-simd"):
            got[p] = am.compute_measures(X, T, y, block_rows=block)
    for p in PATHS[1:]:
        for name, value in got["numpy"].items():
            assert got[p][name] == pytest.approx(value, rel=1e-11, abs=1e-12), (p, name)
    Z = np.vstack([unit(X), unit(T)])
    lab = np.r_[np.zeros(n), np.ones(k)]
    # As in test_fast_measures: scikit-learn subtracts coordinates, the streaming formulas
    # expand squares, so distances near 0 agree to ~1e-8 only.
    assert got["c-simd"]["silhouette_cosine"] == pytest.approx(
        silhouette_score(Z, lab, metric="cosine"), rel=1e-7, abs=1e-8
    )
    assert got["c-simd"]["davies_bouldin"] == pytest.approx(
        davies_bouldin_score(Z, lab), rel=1e-7, abs=1e-8
    )
    Xn = unit(X)
    assert got["c-simd"]["correct_alignment"] == pytest.approx(
        float(np.mean(np.einsum("ij,ij->i", Xn, unit(T)[y]))), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize("d", [1, 3])
def test_identical_points_get_the_definitions_exact_values(path: str, d: int) -> None:
    # Every image on one point, every text on another: zero spread within each cluster,
    # which the streaming formulas see only up to rounding. By definition every point's
    # silhouette is (b - 0)/b = 1, Davies-Bouldin is (0 + 0)/gap = 0 and Calinski-Harabasz
    # takes scikit-learn's value for zero spread, 1.0. (scikit-learn itself is no reference
    # here: its centroids leave last-ulp residues, giving ~1e-8 and ~1e31.)
    rng = np.random.default_rng(d)
    x = rng.standard_normal(d)
    t = -x if d == 1 else rng.standard_normal(d)
    # Norms 2^j: scaling by powers of two is exact, so the unit rows are identical.
    X = np.outer(2.0 ** rng.integers(-3, 4, 50), x)
    T = np.outer([1.0, 2.0, 0.5], t)
    got = am.compute_measures(X, T, np.arange(50) % 3)
    assert got["silhouette_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert got["davies_bouldin"] == 0.0
    assert got["calinski_harabasz"] == 1.0


def test_class_sums_equal_the_definition(path: str) -> None:
    X, _, y = data(n=1000, d=515)  # d not a multiple of the SIMD width
    stats = accumulate(X, y, 5, block_rows=333)
    Xn = unit(X)
    want = np.zeros((5, 515))
    np.add.at(want, y, Xn)
    np.testing.assert_allclose(stats.class_sums, want, rtol=1e-12, atol=1e-12)
    assert stats.sq_norms == pytest.approx(1000.0, rel=1e-13)
    np.testing.assert_array_equal(stats.counts, np.bincount(y, minlength=5))


def test_memmaps_and_row_strided_views_are_read_in_place(path: str, tmp_path: Path) -> None:
    X, T, y = data(n=601)
    np.save(tmp_path / "X.npy", X)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    want = am.compute_measures(X, T, y)
    assert am.compute_measures(mm, T, y) == pytest.approx(want, rel=1e-12)
    # Every other row: the kernel steps over rows in place.
    assert am.compute_measures(X[::2], T, y[::2]) == pytest.approx(
        am.compute_measures(np.ascontiguousarray(X[::2]), T, y[::2]), rel=1e-12
    )
    # Every other column: rows are not contiguous, so the NumPy path reads them.
    T2 = np.ascontiguousarray(T[:, ::2])
    assert am.compute_measures(X[:, ::2], T2, y) == pytest.approx(
        am.compute_measures(np.ascontiguousarray(X[:, ::2]), T2, y), rel=1e-12
    )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({5: np.nan}, "images row 5 contains NaN or infinite values"),
        ({7: 0.0}, "images row 7 is a zero vector"),
        ({9: 0.0, 12: np.inf}, "images row 12 contains NaN"),  # non-finite named first
        ({250: np.inf}, "images row 250 contains NaN"),  # in a later block
    ],
)
def test_bad_rows_give_the_numpy_paths_error(
    path: str, rows: dict[int, float], message: str
) -> None:
    X, T, y = data(n=300, dtype=np.float32)
    for r, v in rows.items():
        X[r] = v
    for names in (["iimm"], ["silhouette_cosine"]):
        with pytest.raises(ValueError, match=message):
            am.compute_measures(X, T, y, names, block_rows=100)


def test_over_and_underflowing_rows_are_rescued_like_numpy(path: str) -> None:
    X, T, y = data(n=200, dtype=np.float64)
    scaled = X.copy()
    scaled[3] *= 1e-170  # ‖x‖² underflows to 0 in float64
    scaled[150] *= 1e170  # ‖x‖² overflows to inf
    with _native.forced(False):
        want = am.compute_measures(X, T, y)
    got = am.compute_measures(scaled, T, y, block_rows=64)
    assert got == pytest.approx(want, rel=1e-12)


def test_inputs_are_left_untouched(path: str) -> None:
    X, T, y = data(n=128, dtype=np.float64)
    X[0] *= 1e170  # a rescued row is rescaled in a copy, never in the caller's array
    before = X.copy()
    am.compute_measures(X, T, y)
    np.testing.assert_array_equal(X, before)


def test_kernel_refuses_what_it_cannot_read() -> None:
    from app.measures import _kernel

    X = np.ones((4, 3), dtype=np.float32)
    sums, sq = np.zeros((2, 3)), np.zeros(4)
    with pytest.raises(ValueError, match=r"label 2 of row 1 is outside 0\.\.1"):
        _kernel.class_sums(X, np.array([0, 2, 0, 1]), sums, sq)
    np.testing.assert_array_equal(sums, 0.0)  # nothing added before the refusal
    with pytest.raises(ValueError, match="float16, float32 or float64"):
        _kernel.class_sums(X.astype(np.int32), np.zeros(4, int), sums, sq)
    with pytest.raises(ValueError, match="rows must be contiguous"):
        _kernel.project(np.ones((4, 6))[:, ::2], np.ones((1, 3)), np.zeros((4, 1)), sq)
    with pytest.raises(ValueError, match=r"dots must be a C-contiguous float64 array"):
        _kernel.project(X, np.ones((2, 3)), np.zeros((4, 1)), sq)
    # int32 labels are read as well as int64
    _kernel.class_sums(X, np.array([0, 1, 1, 0], dtype=np.int32), sums, sq)
    np.testing.assert_allclose(sums, np.full((2, 3), 2 / np.sqrt(3)))
