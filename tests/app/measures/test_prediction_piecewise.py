"""The saturating hinge y = a + b·min(x, τ): exact search, whole-procedure LOO, selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from app.measures.prediction import (
    LinearFit,
    PiecewiseFit,
    fit_auto,
    fit_from_dict,
    fit_linear,
    fit_piecewise,
    predict,
)


def _saturating(seed: int, n: int, sd: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """G rises with slope 3 from 0.1 at IIMM 0.2 and saturates at 0.97 (τ = 0.49)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.6, n)
    return x, np.minimum(0.1 + 3 * (x - 0.2), 0.97) + rng.normal(0, sd, n)


def _straight(seed: int, n: int, sd: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.6, n)
    return x, 0.1 + 1.5 * (x - 0.2) + rng.normal(0, sd, n)


def _sse_at(x: np.ndarray, y: np.ndarray, tau: float) -> float:
    design = np.column_stack((np.ones_like(x), np.minimum(x, tau)))
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(resid @ resid)


@pytest.mark.parametrize("seed", range(4))
def test_breakpoint_is_the_least_squares_optimum(seed: int) -> None:
    x, y = _saturating(seed, 12)
    fit = fit_piecewise(x, y)
    xs = np.sort(x)
    grid = np.linspace(xs[1], xs[-2], 4001)  # the allowed range with 2 tasks on each side
    best_on_grid = min(_sse_at(x, y, t) for t in grid)
    sse = _sse_at(x, y, fit.breakpoint)
    assert sse <= best_on_grid + 1e-12
    assert fit.residual_sd == pytest.approx(np.sqrt(sse / (x.size - 3)))
    assert fit.plateau == pytest.approx(fit.intercept + fit.slope * fit.breakpoint)


def test_recovers_the_planted_threshold() -> None:
    x, y = _saturating(0, 40, sd=0.02)
    fit = fit_piecewise(x, y)
    assert fit.breakpoint == pytest.approx(0.49, abs=0.03)
    assert fit.slope == pytest.approx(3.0, rel=0.15)
    assert fit.plateau == pytest.approx(0.97, abs=0.02)
    assert predict(fit, 5.0).value == pytest.approx(fit.plateau)  # flat beyond τ


@pytest.mark.parametrize("seed", range(3))
def test_loo_reruns_the_whole_procedure(seed: int) -> None:
    x, y = _saturating(seed, 9)
    fit = fit_piecewise(x, y)
    errors = []
    for i in range(x.size):
        keep = np.arange(x.size) != i
        errors.append(y[i] - predict(fit_piecewise(x[keep], y[keep]), x[i]).value)
    assert fit.loo_rmse == pytest.approx(np.sqrt(np.mean(np.square(errors))), rel=1e-9)


def test_fit_auto_picks_the_hinge_for_a_planted_saturation() -> None:
    picked = [isinstance(fit_auto(*_saturating(seed, 15)), PiecewiseFit) for seed in range(30)]
    assert np.mean(picked) >= 0.8


def test_fit_auto_keeps_the_line_for_a_planted_line() -> None:
    picked = [isinstance(fit_auto(*_straight(seed, 15)), PiecewiseFit) for seed in range(30)]
    assert np.mean(picked) <= 0.15


@pytest.mark.parametrize("seed", range(8))
def test_fit_auto_with_no_margin_is_exactly_the_loo_rule(seed: int) -> None:
    x, y = (_straight if seed % 2 else _saturating)(seed, 10, sd=0.06)
    chosen = fit_auto(x, y, min_improvement=0.0)
    wins = fit_piecewise(x, y).loo_rmse < fit_linear(x, y).loo_rmse
    assert isinstance(chosen, PiecewiseFit) is wins
    if wins:
        assert chosen.linear == fit_linear(x, y)


def test_fit_auto_needs_five_tasks_for_the_hinge() -> None:
    x, y = _saturating(1, 4, sd=0.0)
    assert isinstance(fit_auto(x, y), LinearFit)
    with pytest.raises(ValueError, match="a piecewise fit needs at least 4 fine-tuned tasks"):
        fit_piecewise(x[:3], y[:3])


def test_no_allowed_breakpoint_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no breakpoint leaves 2 tasks on each side"):
        fit_piecewise([0.1, 0.1, 0.1, 0.1, 0.5], [0.2, 0.3, 0.25, 0.3, 0.9])
    assert isinstance(fit_auto([0.1, 0.1, 0.1, 0.1, 0.5], [0.2, 0.3, 0.25, 0.3, 0.9]), LinearFit)


def test_interval_matches_a_direct_delta_method() -> None:
    x, y = _saturating(3, 14)
    fit = fit_piecewise(x, y)
    theta = np.array([fit.intercept, fit.slope, fit.breakpoint])

    def model(p: np.ndarray, at: np.ndarray) -> np.ndarray:
        return p[0] + p[1] * np.minimum(at, p[2])

    def jacobian(at: np.ndarray) -> np.ndarray:
        # one-sided in τ (from above) so points at τ get 0, as in the fit
        cols = [(model(theta + h, at) - model(theta, at)) / 1e-7 for h in np.eye(3) * 1e-7]
        return np.column_stack(cols)

    jac = jacobian(x)
    s2 = np.sum((y - model(theta, x)) ** 2) / (x.size - 3)
    for x0 in (0.3, fit.breakpoint + 0.05, 0.7):
        j0 = jacobian(np.array([x0]))[0]
        se = np.sqrt(s2 * (1 + j0 @ np.linalg.pinv(jac.T @ jac) @ j0))
        pred = predict(fit, x0, level=0.9)
        assert pred.se == pytest.approx(se, rel=1e-5)
        half = stats.t.ppf(0.95, x.size - 3) * se
        assert pred.upper - pred.value == pytest.approx(half, rel=1e-5)
        assert pred.df == x.size - 3


def test_piecewise_interval_coverage_is_near_nominal() -> None:
    trials, covered = 200, 0
    for seed in range(trials):
        x, y = _saturating(1000 + seed, 20)
        rng = np.random.default_rng(seed)
        x0 = rng.uniform(0.2, 0.6)
        y0 = min(0.1 + 3 * (x0 - 0.2), 0.97) + rng.normal(0, 0.04)
        pred = predict(fit_piecewise(x, y), x0)
        covered += pred.lower <= y0 <= pred.upper
    # The delta method ignores the kink's uncertainty; 200 trials: binomial sd 1.5%.
    assert 0.90 <= covered / trials <= 0.99


def test_json_round_trip_is_exact() -> None:
    x, y = _saturating(5, 10)
    fit = fit_piecewise(x, y, names=[f"t{i}" for i in range(10)])
    data = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert data["kind"] == "piecewise" and data["linear"]["kind"] == "linear"
    assert PiecewiseFit.from_dict(data) == fit
    assert fit_from_dict(data) == fit
    with pytest.raises(ValueError, match="expected a 'piecewise' fit"):
        PiecewiseFit.from_dict(data["linear"])
