"""Least-squares breakpoint search for ``y = a + b·min(x, τ)`` in O(n log n).

For a fixed τ the model is linear in (a, b) with regressor ``z = min(x, τ)``, and its SSE
follows in O(1) from prefix sums over x sorted ascending. Between two consecutive distinct x
values the only stationary points of the profiled SSE(τ) are the unconstrained split
solution (OLS line on the left points, mean on the right ones, crossing at τ*) and the
degenerate b = 0; so the exact optimum is among the distinct x values and the feasible τ*.
"""

from __future__ import annotations

import numpy as np


def _prefix(values: np.ndarray) -> np.ndarray:
    return np.concatenate(([0.0], np.cumsum(values)))


def _split_crossings(xs: np.ndarray, ys: np.ndarray, min_side: int) -> np.ndarray:
    """τ* of every split whose left line and right mean cross strictly between the two x."""
    n = xs.size
    k = np.arange(min_side, n - min_side + 1)
    k = k[xs[k - 1] < xs[k]]
    px, pxx, pxy, py = _prefix(xs), _prefix(xs * xs), _prefix(xs * ys), _prefix(ys)
    den = k * pxx[k] - px[k] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (k * pxy[k] - px[k] * py[k]) / den
        a = (py[k] - b * px[k]) / k
        c = (py[n] - py[k]) / (n - k)
        tau = (c - a) / b
    ok = (den > 0) & np.isfinite(tau) & (xs[k - 1] < tau) & (tau < xs[k])
    return tau[ok]


def hinge_sse(xs: np.ndarray, ys: np.ndarray, taus: np.ndarray, min_side: int) -> np.ndarray:
    """SSE of the OLS fit of y on ``min(x, τ)`` for each τ; ``inf`` where τ is not allowed.

    Allowed: ``x_min < τ < x_max`` with at least ``min_side`` points on each side of τ
    (points equal to τ count on both). ``xs`` must be sorted ascending.
    """
    n = xs.size
    px, pxx, pxy, py = _prefix(xs), _prefix(xs * xs), _prefix(xs * ys), _prefix(ys)
    m = np.searchsorted(xs, taus, side="right")
    above = n - np.searchsorted(xs, taus, side="left")
    r = n - m
    sz = px[m] + r * taus
    var_z = pxx[m] + r * taus**2 - sz**2 / n
    cov_zy = pxy[m] + taus * (py[n] - py[m]) - sz * py[n] / n
    var_y = float(ys @ ys) - py[n] ** 2 / n
    scale = max(float(xs @ xs) - px[n] ** 2 / n, np.finfo(float).tiny)
    ok = (m >= min_side) & (above >= min_side) & (taus > xs[0]) & (taus < xs[-1])
    ok &= var_z > 1e-12 * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        sse = np.maximum(var_y - cov_zy**2 / var_z, 0.0)
    return np.where(ok, sse, np.inf)


def best_breakpoint(xs: np.ndarray, ys: np.ndarray, min_side: int) -> float | None:
    """The least-squares τ for sorted ``xs`` (None when no τ is allowed)."""
    shift_x, shift_y = float(xs.mean()), float(ys.mean())
    xc, yc = xs - shift_x, ys - shift_y
    taus = np.unique(np.concatenate((xc, _split_crossings(xc, yc, min_side))))
    sse = hinge_sse(xc, yc, taus, min_side)
    best = int(np.argmin(sse))
    if not np.isfinite(sse[best]):
        return None
    return float(taus[best]) + shift_x


def line_on_hinge(x: np.ndarray, y: np.ndarray, tau: float) -> tuple[float, float]:
    """``(a, b)`` of the OLS fit ``y = a + b·min(x, τ)``."""
    z = np.minimum(x, tau)
    zc = z - z.mean()
    b = float(zc @ (y - y.mean())) / float(zc @ zc)
    return float(y.mean()) - b * float(z.mean()), b


def loo_errors(xs: np.ndarray, ys: np.ndarray, min_side: int) -> np.ndarray:
    """``y_i − ŷ_(−i)(x_i)`` where each refit reruns the breakpoint search; NaN if it fails."""
    n = xs.size
    errs = np.full(n, np.nan)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        keep[i] = False
        x_rest, y_rest = xs[keep], ys[keep]
        keep[i] = True
        tau = best_breakpoint(x_rest, y_rest, min_side)
        if tau is None:
            continue
        a, b = line_on_hinge(x_rest, y_rest, tau)
        errs[i] = ys[i] - (a + b * min(xs[i], tau))
    return errs
