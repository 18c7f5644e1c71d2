"""Linear-then-flat fit: G rises with the measure up to a breakpoint τ, then saturates.

The paper (Section 4.1, Figure 3) sees for CoCa and EVA-02-CLIP a linear rise of G with IIMM
up to an upper threshold, above which G stays near 1 and no longer depends on IIMM. The
model here is the continuous hinge ``y = a + b·min(x, τ)``: slope b below τ, the plateau
``a + b·τ`` above it. :func:`fit_auto` keeps it only when it predicts held-out tasks better
than the plain line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from ._checks import xy_pair
from ._hinge import best_breakpoint, line_on_hinge, loo_errors
from ._serial import check_keys, float_in, float_out
from .linear import LinearFit, fit_linear

MIN_POINTS_PIECEWISE = 4
_FLOATS = (
    "intercept",
    "slope",
    "breakpoint",
    "plateau",
    "residual_sd",
    "r_squared",
    "loo_rmse",
    "x_min",
    "x_max",
)


@dataclass(frozen=True)
class PiecewiseFit:
    """``y = intercept + slope·min(x, breakpoint)``; ``plateau = intercept + slope·breakpoint``.

    ``residual_sd = √(SSE/(n − 3))`` (a, b and τ are fitted); ``loo_rmse`` is the
    leave-one-out RMSE of the whole procedure (τ re-searched without each point);
    ``unscaled_cov = (JᵀJ)⁺`` for the Jacobian J of the fit in (a, b, τ);
    ``linear`` is the plain line on the same data, for its statistics and for comparison.
    """

    intercept: float
    slope: float
    breakpoint: float
    plateau: float
    residual_sd: float
    r_squared: float
    loo_rmse: float
    n: int
    x_min: float
    x_max: float
    unscaled_cov: tuple[tuple[float, float, float], ...]
    linear: LinearFit
    names: tuple[str, ...] | None = None

    kind: ClassVar[str] = "piecewise"

    @property
    def df(self) -> int:
        """Residual degrees of freedom, ``n − 3``."""
        return self.n - 3

    def prediction_parts(self, x0: float) -> tuple[float, float, int]:
        """``(ŷ0, se_pred, df)`` by the delta method, τ treated as a fitted parameter.

        ``j0 = (1, min(x0, τ), b·[x0 > τ])``, ``se_pred = s·√(1 + j0ᵀ(JᵀJ)⁺j0)``, df = n − 3.
        """
        above = x0 > self.breakpoint
        j0 = np.array([1.0, min(x0, self.breakpoint), self.slope if above else 0.0])
        spread = 1.0 + float(j0 @ np.asarray(self.unscaled_cov) @ j0)
        value = self.intercept + self.slope * min(x0, self.breakpoint)
        return value, self.residual_sd * math.sqrt(max(spread, 1.0)), self.df

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN → ``None``) that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {"kind": self.kind, "n": int(self.n)}
        out.update({key: float_out(getattr(self, key)) for key in _FLOATS})
        out["unscaled_cov"] = [[float(v) for v in row] for row in self.unscaled_cov]
        out["linear"] = self.linear.to_dict()
        out["names"] = None if self.names is None else list(self.names)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PiecewiseFit:
        """Rebuild a fit from :meth:`to_dict` output."""
        check_keys(data, cls.kind, (*_FLOATS, "n", "unscaled_cov", "linear", "names"))
        names = data["names"]
        return cls(
            **{key: float_in(data[key]) for key in _FLOATS},
            n=int(data["n"]),
            unscaled_cov=tuple(tuple(float(v) for v in row) for row in data["unscaled_cov"]),
            linear=LinearFit.from_dict(data["linear"]),
            names=None if names is None else tuple(str(v) for v in names),
        )


def _unscaled_cov(x: np.ndarray, slope: float, tau: float) -> np.ndarray:
    """``(JᵀJ)⁺`` with J's columns ∂ŷ/∂a = 1, ∂ŷ/∂b = min(x, τ), ∂ŷ/∂τ = b·[x > τ]."""
    jac = np.column_stack((np.ones_like(x), np.minimum(x, tau), slope * (x > tau)))
    return np.linalg.pinv(jac.T @ jac)


def fit_piecewise(
    x: ArrayLike, y: ArrayLike, *, names: Sequence[str] | None = None, min_side: int = 2
) -> PiecewiseFit:
    """Least-squares hinge ``y = a + b·min(x, τ)`` with an exact breakpoint search.

    τ minimises SSE over ``x_min < τ < x_max`` with at least ``min_side`` tasks on each side
    (a task at τ counts on both); (a, b) is then OLS of y on ``min(x, τ)``. Needs n ≥ 4.
    ``loo_rmse = √(mean_i (y_i − ŷ_(−i)(x_i))²)``, each refit searching τ again.
    """
    xv, yv, tup = xy_pair(x, y, names, MIN_POINTS_PIECEWISE, "a piecewise fit")
    order = np.argsort(xv, kind="stable")
    xs, ys = xv[order], yv[order]
    tau = best_breakpoint(xs, ys, min_side)
    if tau is None:
        raise ValueError(
            f"no breakpoint leaves {min_side} tasks on each side with distinct feature values "
            "below it; fit the plain line or add fine-tuned tasks"
        )
    a, b = line_on_hinge(xv, yv, tau)
    resid = yv - (a + b * np.minimum(xv, tau))
    sse = float(resid @ resid)
    syy = float(((yv - yv.mean()) ** 2).sum())
    loo = loo_errors(xs, ys, min_side)
    return PiecewiseFit(
        intercept=a,
        slope=b,
        breakpoint=tau,
        plateau=a + b * tau,
        residual_sd=math.sqrt(sse / (xv.size - 3)),
        r_squared=max(0.0, 1.0 - sse / syy),
        loo_rmse=float(np.sqrt(np.mean(loo**2))),
        n=int(xv.size),
        x_min=float(xs[0]),
        x_max=float(xs[-1]),
        unscaled_cov=tuple(tuple(float(v) for v in row) for row in _unscaled_cov(xv, b, tau)),
        linear=fit_linear(xv, yv, names=tup),
        names=tup,
    )


def fit_auto(
    x: ArrayLike,
    y: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    min_side: int = 2,
    min_improvement: float = 0.05,
) -> LinearFit | PiecewiseFit:
    """The plain line, or the hinge when it wins leave-one-out: chosen iff
    ``loo_rmse(hinge) < (1 − min_improvement) · loo_rmse(line)``.

    The hinge is tried only from n ≥ 5 tasks (each leave-one-out refit keeps ≥ 4). Its LOO
    reruns the breakpoint search without each task, so the choice of τ is cross-validated
    too; a failed refit makes its LOO NaN and the line is kept. LOO alone favours the larger
    model on straight data as n grows (hinge picked for 17% of noisy lines at n = 30 with
    no margin); the default 5% margin cuts that to about 2% and keeps ≥ 94% of planted
    saturations at n ≥ 15 (benchmarks/README.md). ``min_improvement=0`` is the bare rule.
    """
    if not 0.0 <= min_improvement < 1.0:
        raise ValueError(f"min_improvement must lie in [0, 1), got {min_improvement}")
    linear = fit_linear(x, y, names=names)
    if linear.n < MIN_POINTS_PIECEWISE + 1:
        return linear
    try:
        hinge = fit_piecewise(x, y, names=names, min_side=min_side)
    except ValueError:
        return linear
    if math.isfinite(hinge.loo_rmse) and hinge.loo_rmse < (1 - min_improvement) * linear.loo_rmse:
        return hinge
    return linear


def fit_from_dict(data: Mapping[str, Any]) -> LinearFit | PiecewiseFit:
    """Rebuild a :class:`LinearFit` or :class:`PiecewiseFit` from its ``to_dict`` output."""
    kinds: dict[str, type[LinearFit] | type[PiecewiseFit]] = {
        LinearFit.kind: LinearFit,
        PiecewiseFit.kind: PiecewiseFit,
    }
    kind = data.get("kind")
    if kind not in kinds:
        raise ValueError(f"unknown fit kind {kind!r}; expected one of {sorted(kinds)}")
    return kinds[kind].from_dict(data)
