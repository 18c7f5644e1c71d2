"""Which measure predicts fine-tuning best: the paper's Tables 1 to 3 on the user's tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._checks import MIN_POINTS, as_names, as_vector, check_not_constant, need_points
from .linear import fit_linear


@dataclass(frozen=True)
class MeasureComparison:
    """One measure against G and against the fine-tuned accuracy over ``n`` tasks.

    ``missing`` holds the task indices dropped because the measure is NaN there.
    ``r_squared`` and ``slope_pvalue`` are of the linear fit of G on the measure.
    """

    measure: str
    n: int
    spearman_gain: float
    spearman_gain_pvalue: float
    spearman_accuracy: float
    spearman_accuracy_pvalue: float
    r_squared: float
    slope_pvalue: float
    missing: tuple[int, ...] = ()


def _compare_one(
    measure: str, values: np.ndarray, gain: np.ndarray, accuracy: np.ndarray
) -> MeasureComparison:
    present = ~np.isnan(values)
    x = values[present]
    need_points(int(x.size), MIN_POINTS, f"comparing measure {measure!r} (non-missing values)")
    check_not_constant(x, f"measure {measure!r}")
    check_not_constant(gain[present], f"gain on the tasks where {measure!r} is known")
    check_not_constant(accuracy[present], f"accuracy on the tasks where {measure!r} is known")
    fit = fit_linear(x, gain[present])
    rho_acc, p_acc = stats.spearmanr(x, accuracy[present])
    return MeasureComparison(
        measure=measure,
        n=int(x.size),
        spearman_gain=fit.spearman_rho,
        spearman_gain_pvalue=fit.spearman_pvalue,
        spearman_accuracy=float(rho_acc),
        spearman_accuracy_pvalue=float(p_acc),
        r_squared=fit.r_squared,
        slope_pvalue=fit.slope_pvalue,
        missing=tuple(int(i) for i in np.flatnonzero(~present)),
    )


def compare_measures(
    features: Mapping[str, ArrayLike],
    gain: ArrayLike,
    finetuned_acc: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    skip_insufficient: bool = False,
) -> list[MeasureComparison]:
    """Spearman ρ (and p) of each measure vs G and vs fine-tuned accuracy, and R² vs G.

    ρ and its p-value are ``scipy.stats.spearmanr`` (t approximation with n−2 df); R² and the
    slope p-value are those of :func:`fit_linear` of G on the measure. A NaN measure value
    means "not computed for that task": the task is dropped for that measure only. NaN in
    ``gain`` or ``finetuned_acc`` and ±inf anywhere raise, naming the index. A measure left
    with < 3 tasks or constant raises, or is left out with ``skip_insufficient``.
    Results keep the order of ``features``.
    """
    tup = as_names(names, len(np.asarray(gain)))
    g = as_vector(gain, "gain", tup)
    acc = as_vector(finetuned_acc, "finetuned_acc", tup)
    if acc.size != g.size:
        raise ValueError(f"gain and finetuned_acc differ in length ({g.size} vs {acc.size})")
    out: list[MeasureComparison] = []
    for measure, raw in features.items():
        values = as_vector(raw, f"measure {measure!r}", tup, allow_nan=True)
        if values.size != g.size:
            raise ValueError(f"measure {measure!r} has {values.size} values for {g.size} tasks")
        try:
            out.append(_compare_one(str(measure), values, g, acc))
        except ValueError:
            if not skip_insufficient:
                raise
    return out
