"""Point predictions with t prediction intervals, and the fine-tuned accuracy they imply."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from scipy import stats

from ._checks import as_scalar, check_level
from ._serial import float_out


class FittedPredictor(Protocol):
    """What :func:`predict` needs from a fit (``LinearFit`` and ``PiecewiseFit`` both qualify)."""

    x_min: float
    x_max: float

    def prediction_parts(self, x0: float) -> tuple[float, float, int]: ...


@dataclass(frozen=True)
class Prediction:
    """A predicted target at feature value ``x`` with a ``level`` prediction interval."""

    x: float
    value: float
    lower: float
    upper: float
    level: float
    se: float
    df: int
    extrapolated: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the fields."""
        out = asdict(self)
        for key in ("x", "value", "lower", "upper", "level", "se"):
            out[key] = float_out(out[key])
        return out


@dataclass(frozen=True)
class ImpliedAccuracy:
    """Fine-tuned accuracy implied by a predicted G, with the interval ends mapped alike."""

    value: float
    lower: float
    upper: float
    level: float


def predict(fit: FittedPredictor, x_new: float, *, level: float = 0.95) -> Prediction:
    """Predicted target at ``x_new`` with a prediction interval for a new task.

    Linear fit: ``ŷ0 ± t_{n−2,(1+level)/2} · s · √(1 + 1/n + (x0 − x̄)²/Sxx)``.
    Piecewise fit: see ``PiecewiseFit.prediction_parts`` (delta method, n−3 df).
    ``extrapolated`` is true when ``x_new`` lies outside ``[x_min, x_max]`` of the fit.
    """
    x0 = as_scalar(x_new, "x_new")
    lv = check_level(level)
    value, se, df = fit.prediction_parts(x0)
    half = float(stats.t.ppf(0.5 + lv / 2.0, df)) * se
    return Prediction(
        x=x0,
        value=value,
        lower=value - half,
        upper=value + half,
        level=lv,
        se=se,
        df=df,
        extrapolated=not fit.x_min <= x0 <= fit.x_max,
    )


def implied_accuracy(acc_zs: float, gain: float) -> float:
    """Fine-tuned accuracy implied by gain G: ``clip(acc_zs + G·(1 − acc_zs), 0, 1)``.

    Inverts ``G = (acc_ft − acc_zs)/(1 − acc_zs)``; ``acc_zs`` must lie in [0, 1].
    """
    acc = as_scalar(acc_zs, "acc_zs")
    if not 0.0 <= acc <= 1.0:
        raise ValueError(f"acc_zs is an accuracy and must lie in [0, 1], got {acc}")
    g = as_scalar(gain, "gain")
    return min(1.0, max(0.0, acc + g * (1.0 - acc)))


def implied_accuracy_interval(acc_zs: float, gain: Prediction) -> ImpliedAccuracy:
    """:func:`implied_accuracy` of the predicted G and of both interval ends.

    The map is non-decreasing in G, so the mapped ends bound the accuracy at the same level.
    """
    return ImpliedAccuracy(
        value=implied_accuracy(acc_zs, gain.value),
        lower=implied_accuracy(acc_zs, gain.lower),
        upper=implied_accuracy(acc_zs, gain.upper),
        level=gain.level,
    )
