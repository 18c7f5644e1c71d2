"""fit_linear against scipy, explicit refits, and its error messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from app.measures.prediction import LinearFit, fit_from_dict, fit_linear, loo_residuals


def _random_xy(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 0.7, n)
    y = rng.normal(0.2, 0.3) + rng.normal(0, 2) * x + rng.normal(0, rng.uniform(0.01, 0.5), n)
    return x, y


@pytest.mark.parametrize("seed", range(20))
def test_matches_linregress_and_spearmanr(seed: int) -> None:
    x, y = _random_xy(seed, n=3 + seed)
    fit = fit_linear(x, y)
    ref = stats.linregress(x, y)
    rho = stats.spearmanr(x, y)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-10, abs=1e-12)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-10, abs=1e-12)
    assert fit.slope_se == pytest.approx(ref.stderr, rel=1e-9)
    assert fit.intercept_se == pytest.approx(ref.intercept_stderr, rel=1e-9)
    assert fit.pearson_r == pytest.approx(ref.rvalue, rel=1e-10)
    assert fit.r_squared == pytest.approx(ref.rvalue**2, rel=1e-9)
    assert fit.slope_pvalue == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-15)
    assert fit.spearman_rho == pytest.approx(rho.statistic, abs=1e-12)
    assert fit.spearman_pvalue == pytest.approx(rho.pvalue, rel=1e-9, abs=1e-15)
    assert fit.n == x.size and fit.df == x.size - 2
    assert (fit.x_min, fit.x_max) == (x.min(), x.max())
    assert fit.x_mean == pytest.approx(x.mean())
    assert fit.sxx == pytest.approx(((x - x.mean()) ** 2).sum())


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=3, max_size=25))
def test_matches_linregress_property(points: list[tuple[float, float]]) -> None:
    x, y = (np.array(v) for v in zip(*points, strict=True))
    if np.ptp(x) < 1e-3 * max(1.0, np.abs(x).max()) or np.ptp(y) == 0:
        return  # near-constant x is ill-conditioned for both; constant y is an error
    fit = fit_linear(x, y)
    ref = stats.linregress(x, y)
    scale = np.abs(y).max() / np.ptp(x)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-7, abs=1e-9 * scale)
    assert fit.pearson_r == pytest.approx(ref.rvalue, abs=1e-7)
    assert fit.residual_sd >= 0 and 0 <= fit.r_squared <= 1


@pytest.mark.parametrize("seed", range(5))
def test_loo_rmse_equals_explicit_refits(seed: int) -> None:
    x, y = _random_xy(100 + seed, n=12)
    fit = fit_linear(x, y)
    errors = []
    for i in range(x.size):
        keep = np.arange(x.size) != i
        ref = stats.linregress(x[keep], y[keep])
        errors.append(y[i] - (ref.intercept + ref.slope * x[i]))
    assert fit.loo_rmse == pytest.approx(math.sqrt(np.mean(np.square(errors))), rel=1e-10)
    residuals = y - (fit.intercept + fit.slope * x)
    np.testing.assert_allclose(loo_residuals(x, residuals), errors, rtol=1e-9, atol=1e-12)


def test_loo_undefined_when_deleting_a_point_leaves_constant_x() -> None:
    fit = fit_linear([0.1, 0.1, 0.1, 0.5], [0.2, 0.3, 0.25, 0.9])
    assert math.isnan(fit.loo_rmse)
    assert json.loads(json.dumps(fit.to_dict()))["loo_rmse"] is None
    assert math.isnan(fit_from_dict(json.loads(json.dumps(fit.to_dict()))).loo_rmse)


def test_exact_line_has_zero_spread_and_zero_pvalue() -> None:
    fit = fit_linear([0.1, 0.2, 0.4], [0.3, 0.5, 0.9])
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(0.1)
    assert fit.residual_sd == pytest.approx(0.0, abs=1e-12)
    assert fit.slope_pvalue == pytest.approx(0.0, abs=1e-9)
    assert fit.r_squared == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("n", "message"),
    [
        (0, "needs at least 3 fine-tuned tasks, got 0: 3 more fine-tuned tasks are needed"),
        (1, "got 1: 2 more fine-tuned tasks are needed"),
        (2, "got 2: 1 more fine-tuned task is needed"),
    ],
)
def test_too_few_points_says_how_many_more(n: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_linear(np.arange(n) / 10, np.arange(n) / 5)


def test_constant_feature_is_refused() -> None:
    with pytest.raises(ValueError, match=r"x \(feature\) is constant \(every value equals 0.3\)"):
        fit_linear([0.3, 0.3, 0.3, 0.3], [0.1, 0.5, 0.2, 0.4])


def test_constant_target_is_refused() -> None:
    with pytest.raises(ValueError, match=r"y \(target\) is constant"):
        fit_linear([0.1, 0.2, 0.3], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_names_its_index(bad: float) -> None:
    with pytest.raises(ValueError, match=r"x \(feature\) has a non-finite value .* at index 2"):
        fit_linear([0.1, 0.2, bad, 0.4], [0.1, 0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match=r"y \(target\) .* at index 1 \('dtd'\)"):
        fit_linear([0.1, 0.2, 0.3], [0.1, bad, 0.3], names=["cars", "dtd", "eurosat"])


def test_length_mismatches_are_refused() -> None:
    with pytest.raises(ValueError, match=r"x and y differ in length \(3 vs 4\)"):
        fit_linear([0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="names has 2 entries but there are 3 points"):
        fit_linear([0.1, 0.2, 0.3], [0.1, 0.2, 0.4], names=["a", "b"])
    with pytest.raises(ValueError, match="one-dimensional"):
        fit_linear([[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.4]])


def test_json_round_trip_is_exact() -> None:
    x, y = _random_xy(7, n=9)
    names = [f"task{i}" for i in range(9)]
    fit = fit_linear(x, y, names=names)
    text = json.dumps(fit.to_dict(), allow_nan=False)
    back = LinearFit.from_dict(json.loads(text))
    assert back == fit
    assert fit_from_dict(json.loads(text)) == fit
    assert back.names == tuple(names)
    assert json.loads(text)["kind"] == "linear"


def test_from_dict_rejects_foreign_dicts() -> None:
    data = fit_linear([0.1, 0.2, 0.4], [0.3, 0.5, 0.8]).to_dict()
    with pytest.raises(ValueError, match=r"missing keys: \['slope'\]"):
        LinearFit.from_dict({k: v for k, v in data.items() if k != "slope"})
    with pytest.raises(ValueError, match="unknown keys"):
        LinearFit.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="unknown fit kind 'cubic'"):
        fit_from_dict({**data, "kind": "cubic"})
