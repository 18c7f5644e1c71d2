"""Input checks shared by the predictors; every message names what to fix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

MIN_POINTS = 3


def _where(index: int, names: Sequence[str] | None) -> str:
    return f"index {index} ({names[index]!r})" if names is not None else f"index {index}"


def as_vector(
    values: ArrayLike, label: str, names: Sequence[str] | None = None, *, allow_nan: bool = False
) -> np.ndarray:
    """A 1-D float64 copy of ``values``; non-finite entries raise with their index.

    With ``allow_nan`` NaN marks a missing value and passes; ±inf always raises.
    """
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{label} must be numbers: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{label} must be one-dimensional, got shape {arr.shape}")
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if bad.any():
        idx = np.flatnonzero(bad)
        more = f" (and {idx.size - 1} more)" if idx.size > 1 else ""
        raise ValueError(
            f"{label} has a non-finite value ({arr[idx[0]]}) at {_where(int(idx[0]), names)}{more}"
        )
    return arr


def as_names(names: Sequence[str] | None, n: int) -> tuple[str, ...] | None:
    """The dataset names as a tuple of str, checked against the number of points."""
    if names is None:
        return None
    out = tuple(str(name) for name in names)
    if len(out) != n:
        raise ValueError(f"names has {len(out)} entries but there are {n} points")
    return out


def need_points(n: int, minimum: int = MIN_POINTS, what: str = "a linear fit") -> None:
    """Raise unless ``n >= minimum``, saying how many more fine-tuned tasks are needed."""
    if n < minimum:
        more = minimum - n
        plural = "tasks are" if more > 1 else "task is"
        raise ValueError(
            f"{what} needs at least {minimum} fine-tuned tasks, got {n}: "
            f"{more} more fine-tuned {plural} needed"
        )


def check_not_constant(values: np.ndarray, label: str) -> None:
    """Raise when every value is equal: no slope or correlation is defined then."""
    if values.size and np.all(values == values[0]):
        raise ValueError(
            f"{label} is constant (every value equals {values[0]:g}); "
            "a slope or correlation needs at least two distinct values"
        )


def xy_pair(
    x: ArrayLike, y: ArrayLike, names: Sequence[str] | None, minimum: int, what: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Checked (x, y, names) for a fit: equal lengths, finite, enough points, not constant."""
    xs = np.asarray(x)
    ys = np.asarray(y)
    if xs.shape[:1] != ys.shape[:1]:
        raise ValueError(f"x and y differ in length ({len(xs)} vs {len(ys)})")
    tup = as_names(names, len(xs))
    xv = as_vector(x, "x (feature)", tup)
    yv = as_vector(y, "y (target)", tup)
    need_points(xv.size, minimum, what)
    check_not_constant(xv, "x (feature)")
    check_not_constant(yv, "y (target)")
    return xv, yv, tup


def as_scalar(value: float, label: str) -> float:
    """A finite Python float, or a ValueError naming ``label``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{label} must be finite, got {out}")
    return out


def check_level(level: float) -> float:
    """The confidence level as a float in (0, 1)."""
    lv = as_scalar(level, "level")
    if not 0.0 < lv < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {lv}")
    return lv
