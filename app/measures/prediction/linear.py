"""Ordinary least-squares line of a target (G or the out-of-domain change) on one measure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._checks import MIN_POINTS, xy_pair
from ._serial import check_keys, float_in, float_out

# A leverage this close to 1 means deleting the point leaves a constant feature.
_LEVERAGE_ONE = 1e-12


@dataclass(frozen=True)
class LinearFit:
    """``y = intercept + slope·x`` fitted by least squares, with the statistics a user reads.

    ``x_mean`` and ``sxx = Σ(x_i − x̄)²`` are kept so prediction intervals need no data.
    ``loo_rmse`` is NaN when some point is the only one off a common x (its refit is undefined).
    """

    slope: float
    intercept: float
    slope_se: float
    intercept_se: float
    r_squared: float
    slope_pvalue: float
    pearson_r: float
    spearman_rho: float
    spearman_pvalue: float
    loo_rmse: float
    residual_sd: float
    n: int
    x_min: float
    x_max: float
    x_mean: float
    sxx: float
    names: tuple[str, ...] | None = None

    kind: ClassVar[str] = "linear"

    @property
    def df(self) -> int:
        """Residual degrees of freedom, ``n − 2``."""
        return self.n - 2

    def prediction_parts(self, x0: float) -> tuple[float, float, int]:
        """``(ŷ0, se_pred, df)`` with ``se_pred = s·√(1 + 1/n + (x0 − x̄)²/Sxx)``."""
        value = self.intercept + self.slope * x0
        spread = 1.0 + 1.0 / self.n + (x0 - self.x_mean) ** 2 / self.sxx
        return value, self.residual_sd * math.sqrt(spread), self.df

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN → ``None``) that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {"kind": self.kind}
        for key, value in asdict(self).items():
            if key == "names":
                out[key] = None if value is None else list(value)
            elif key == "n":
                out[key] = int(value)
            else:
                out[key] = float_out(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinearFit:
        """Rebuild a fit from :meth:`to_dict` output."""
        names = [f.name for f in fields(cls)]
        check_keys(data, cls.kind, names)
        kwargs: dict[str, Any] = {}
        for key in names:
            value = data[key]
            if key == "names":
                kwargs[key] = None if value is None else tuple(str(v) for v in value)
            elif key == "n":
                kwargs[key] = int(value)
            else:
                kwargs[key] = float_in(value)
        return cls(**kwargs)


def loo_residuals(x: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Leave-one-out residuals ``e_i / (1 − h_ii)``, ``h_ii = 1/n + (x_i − x̄)²/Sxx``.

    This equals ``y_i − ŷ_(−i)(x_i)`` of the refit without point i (the PRESS identity).
    Entries whose refit is undefined (``h_ii = 1``) are NaN.
    """
    xc = x - x.mean()
    leverage = 1.0 / x.size + xc**2 / np.dot(xc, xc)
    room = 1.0 - leverage
    out = np.full_like(residuals, np.nan)
    ok = room > _LEVERAGE_ONE
    out[ok] = residuals[ok] / room[ok]
    return out


def _slope_pvalue(slope: float, slope_se: float, df: int) -> float:
    """Two-sided p-value of ``t = slope / se`` with ``df`` degrees of freedom."""
    if slope_se == 0.0:
        return 0.0 if slope != 0.0 else 1.0
    return float(2.0 * stats.t.sf(abs(slope / slope_se), df))


def fit_linear(x: ArrayLike, y: ArrayLike, *, names: Sequence[str] | None = None) -> LinearFit:
    """Least-squares line ``y = a + b·x`` with its inference (needs n ≥ 3, x and y not constant).

    ``b = Sxy/Sxx``, ``a = ȳ − b·x̄``; ``s² = Σe_i²/(n−2)``; ``se(b) = s/√Sxx``,
    ``se(a) = s·√(1/n + x̄²/Sxx)``; slope p-value: two-sided t test of b = 0 with n−2 df;
    ``R² = 1 − SSE/Syy = r²``; Spearman ρ with its p-value from ``scipy.stats.spearmanr``;
    ``loo_rmse = √(mean((e_i/(1−h_ii))²))``.
    """
    xv, yv, tup = xy_pair(x, y, names, MIN_POINTS, "a linear fit")
    n = xv.size
    x_mean, y_mean = float(xv.mean()), float(yv.mean())
    xc, yc = xv - x_mean, yv - y_mean
    sxx, syy, sxy = float(xc @ xc), float(yc @ yc), float(xc @ yc)
    slope = sxy / sxx
    intercept = y_mean - slope * x_mean
    residuals = yc - slope * xc
    sse = float(residuals @ residuals)
    s = math.sqrt(sse / (n - 2))
    slope_se = s / math.sqrt(sxx)
    rho, rho_p = stats.spearmanr(xv, yv)
    loo = loo_residuals(xv, residuals)
    return LinearFit(
        slope=slope,
        intercept=intercept,
        slope_se=slope_se,
        intercept_se=s * math.sqrt(1.0 / n + x_mean**2 / sxx),
        r_squared=max(0.0, 1.0 - sse / syy),
        slope_pvalue=_slope_pvalue(slope, slope_se, n - 2),
        pearson_r=float(np.clip(sxy / math.sqrt(sxx * syy), -1.0, 1.0)),
        spearman_rho=float(rho),
        spearman_pvalue=float(rho_p),
        loo_rmse=float(np.sqrt(np.mean(loo**2))),
        residual_sd=s,
        n=n,
        x_min=float(xv.min()),
        x_max=float(xv.max()),
        x_mean=x_mean,
        sxx=sxx,
        names=tup,
    )
