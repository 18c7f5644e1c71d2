"""Every invalid input is refused with a ValueError a user can act on."""

from __future__ import annotations

import numpy as np
import pytest

import app.measures as am

rng = np.random.default_rng(0)
X = rng.standard_normal((10, 4))
T = rng.standard_normal((3, 4))
Y = rng.integers(0, 3, 10)


def with_row(a: np.ndarray, i: int, value: float) -> np.ndarray:
    out = a.copy()
    out[i] = value
    return out


@pytest.mark.parametrize(
    ("images", "texts", "labels", "message"),
    [
        (X[:, :3], T, Y, "texts have dimension 4 but images have dimension 3"),
        (X, T, Y[:9], "labels has length 9 but images has 10 rows"),
        (X, T, np.r_[Y[:9], 3], r"labels must lie in 0\.\.2 .*got 3"),
        (X, T, np.r_[Y[:9], -1], r"labels must lie in 0\.\.2 .*got -1"),
        (X, T, np.r_[Y[:9], 0.5], "labels must be integers; label 9 is 0.5"),
        (X, T, Y.astype(str), "labels must be integers in 0..k-1; got dtype"),
        (X, T, Y[:, None], "labels must be a 1-D array"),
        (X[:1], T, Y[:1], "need at least 2 images; got 1"),
        (X, T[:1], np.zeros(10, int), r"need at least 2 classes \(text embeddings\); got 1"),
        (with_row(X, 4, np.nan), T, Y, "images row 4 contains NaN or infinite values"),
        (with_row(X, 6, np.inf), T, Y, "images row 6 contains NaN or infinite values"),
        (with_row(X, 7, 0.0), T, Y, "images row 7 is a zero vector"),
        (X, with_row(T, 1, 0.0), Y, "texts row 1 is a zero vector"),
        (X, with_row(T, 2, np.nan), Y, "texts row 2 contains NaN"),
        (X[0], T, Y, r"images must be a 2-D array \(rows, dim\); got shape \(4,\)"),
        (X, T[None], Y, "texts must be a 2-D array"),
        (X.astype(complex), T, Y, "images must hold real numbers"),
    ],
)
def test_invalid_inputs_are_refused(
    images: np.ndarray, texts: np.ndarray, labels: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        am.compute_measures(images, texts, labels)


def test_zero_row_far_into_a_blocked_pass_is_named() -> None:
    big = np.ones((1000, 4))
    big[777] = 0
    with pytest.raises(ValueError, match="images row 777 is a zero vector"):
        am.compute_measures(big, T, np.zeros(1000, int), block_rows=100)


def test_tiny_and_huge_rows_are_normalised_not_refused() -> None:
    scaled = X.copy()
    scaled[0] *= 1e-170
    scaled[1] *= 1e170
    assert am.iimm(scaled, T, Y) == pytest.approx(am.iimm(X, T, Y), rel=1e-12)


def test_single_matrix_functions_name_their_input() -> None:
    with pytest.raises(ValueError, match="need at least 2 texts"):
        am.intra_texts(T[:1])
    with pytest.raises(ValueError, match="need at least 2 images"):
        am.intra_images(X[:1])


def test_unknown_measure_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown measure\(s\) 'iim'; valid names: iimm, "):
        am.compute_measures(X, T, Y, ["iim"])
