"""Prediction intervals against a direct computation and by coverage; implied accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from app.measures.prediction import (
    fit_linear,
    implied_accuracy,
    implied_accuracy_interval,
    predict,
)


@pytest.mark.parametrize(("seed", "x0", "level"), [(0, 0.35, 0.95), (1, 0.9, 0.8), (2, -0.2, 0.99)])
def test_interval_matches_design_matrix_computation(seed: int, x0: float, level: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 0.7, 10)
    y = 0.3 + 1.2 * x + rng.normal(0, 0.05, x.size)
    X = np.column_stack((np.ones_like(x), x))
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    resid = y - X @ beta
    s2 = resid @ resid / (x.size - 2)
    v0 = np.array([1.0, x0])
    se = np.sqrt(s2 * (1.0 + v0 @ np.linalg.inv(X.T @ X) @ v0))
    half = stats.t.ppf((1 + level) / 2, x.size - 2) * se

    pred = predict(fit_linear(x, y), x0, level=level)
    assert pred.value == pytest.approx(v0 @ beta, rel=1e-10)
    assert pred.se == pytest.approx(se, rel=1e-9)
    assert (pred.lower, pred.upper) == pytest.approx((v0 @ beta - half, v0 @ beta + half))
    assert pred.df == x.size - 2 and pred.level == level
    assert pred.extrapolated is not (x.min() <= x0 <= x.max())


def test_extrapolated_flag_at_the_edges() -> None:
    fit = fit_linear([0.2, 0.3, 0.5], [0.1, 0.4, 0.6])
    assert not predict(fit, 0.2).extrapolated and not predict(fit, 0.5).extrapolated
    assert predict(fit, 0.19).extrapolated and predict(fit, 0.51).extrapolated


def test_coverage_of_a_fresh_observation_is_near_nominal() -> None:
    # Planted G = 0.1 + 1.5·IIMM + N(0, 0.05²) on 9 tasks, like the paper's benchmark suite.
    trials, covered, widths = 400, 0, []
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        x = rng.uniform(0.2, 0.6, 9)
        y = 0.1 + 1.5 * x + rng.normal(0, 0.05, x.size)
        x0 = rng.uniform(0.15, 0.65)
        y0 = 0.1 + 1.5 * x0 + rng.normal(0, 0.05)
        pred = predict(fit_linear(x, y), x0)
        covered += pred.lower <= y0 <= pred.upper
        widths.append(pred.upper - pred.lower)
    # Binomial sd at p = 0.95 over 400 trials is 1.1%: [0.92, 0.98] is ±2.7 sd.
    assert 0.92 <= covered / trials <= 0.98
    # A z interval with the true sd is 0.196 wide; the t interval with 7 df is a bit wider.
    assert 0.18 < float(np.median(widths)) < 0.30


@pytest.mark.parametrize(("level", "message"), [(1.0, "strictly between 0 and 1"), (0, "strictly")])
def test_bad_level_is_refused(level: float, message: str) -> None:
    fit = fit_linear([0.2, 0.3, 0.5], [0.1, 0.4, 0.6])
    with pytest.raises(ValueError, match=message):
        predict(fit, 0.3, level=level)


def test_non_finite_x_new_is_refused() -> None:
    fit = fit_linear([0.2, 0.3, 0.5], [0.1, 0.4, 0.6])
    with pytest.raises(ValueError, match="x_new must be finite, got nan"):
        predict(fit, float("nan"))
    with pytest.raises(ValueError, match="x_new must be a number"):
        predict(fit, "high")  # type: ignore[arg-type]


def test_prediction_to_dict_is_json() -> None:
    pred = predict(fit_linear([0.2, 0.3, 0.5], [0.1, 0.4, 0.6]), 0.7)
    data = json.loads(json.dumps(pred.to_dict(), allow_nan=False))
    assert data["extrapolated"] is True and data["df"] == 1


@pytest.mark.parametrize(
    ("acc_zs", "gain", "expected"),
    [(0.6, 0.5, 0.8), (0.6, 0.0, 0.6), (0.6, 1.0, 1.0), (0.6, 1.4, 1.0), (0.2, -0.5, 0.0),
     (0.2, -0.1, 0.12), (1.0, 0.3, 1.0), (0.0, 0.25, 0.25)],
)  # fmt: skip
def test_implied_accuracy_and_clipping(acc_zs: float, gain: float, expected: float) -> None:
    assert implied_accuracy(acc_zs, gain) == pytest.approx(expected)


def test_implied_accuracy_refuses_non_accuracies() -> None:
    with pytest.raises(ValueError, match=r"acc_zs is an accuracy and must lie in \[0, 1\]"):
        implied_accuracy(72.0, 0.5)
    with pytest.raises(ValueError, match="gain must be finite"):
        implied_accuracy(0.5, float("inf"))


def test_implied_accuracy_interval_maps_and_clips_both_ends() -> None:
    fit = fit_linear([0.2, 0.3, 0.4, 0.5], [0.3, 0.75, 0.5, 0.95])
    pred = predict(fit, 0.45)
    assert pred.value < 1.0 < pred.upper  # only the upper end needs clipping
    acc = implied_accuracy_interval(0.6, pred)
    assert acc.value == pytest.approx(0.6 + pred.value * 0.4)
    assert acc.lower == pytest.approx(max(0.0, 0.6 + pred.lower * 0.4))
    assert acc.upper == 1.0
    assert acc.lower <= acc.value <= acc.upper and acc.level == 0.95
