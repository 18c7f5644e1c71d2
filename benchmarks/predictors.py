"""Benchmark the predictors: fit + predict time against scipy.stats.linregress, and how often
fit_auto picks the saturating hinge on planted straight and saturating relations.

Run: ``.venv/bin/python benchmarks/predictors.py`` (about a minute on 2 cores). Paste the
printed tables into the "predictors.py" section of benchmarks/README.md.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.measures.prediction import (
    PiecewiseFit,
    fit_auto,
    fit_linear,
    fit_piecewise,
    predict,
)

SIZES = (10, 100, 1000)


def best_time(fn: Callable[[], object], budget_s: float = 0.5, min_runs: int = 3) -> float:
    """Best wall time of repeated calls (the least disturbed run on a loaded machine)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def planted(kind: str, n: int, seed: int, sd: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """IIMM-like x in [0.2, 0.6]; G a line (slope 1.5) or a line (slope 3) capped at 0.97."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.6, n)
    clean = 0.1 + 1.5 * (x - 0.2) if kind == "line" else np.minimum(0.1 + 3 * (x - 0.2), 0.97)
    return x, clean + rng.normal(0, sd, n)


def timing_table() -> None:
    print("| n tasks | linregress | fit_linear + predict | ratio | fit_piecewise | fit_auto |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in SIZES:
        x, y = planted("line", n, seed=n)
        base = best_time(lambda x=x, y=y: stats.linregress(x, y))
        ours = best_time(lambda x=x, y=y: predict(fit_linear(x, y), 0.4))
        hinge = best_time(lambda x=x, y=y: fit_piecewise(x, y), min_runs=1)
        auto = best_time(lambda x=x, y=y: fit_auto(x, y), min_runs=1)
        print(
            f"| {n} | {base * 1e6:.0f} µs | {ours * 1e6:.0f} µs | {ours / base:.1f}× "
            f"| {hinge * 1e3:.1f} ms | {auto * 1e3:.1f} ms |"
        )


def selection_table(trials: int = 100) -> None:
    print("\n| n tasks | margin | hinge picked, planted line | hinge picked, planted saturation |")
    print("| ---: | ---: | ---: | ---: |")
    for n in (9, 15, 30):
        for margin in (0.0, 0.05):
            rates = []
            for kind in ("line", "saturating"):
                picks = [
                    isinstance(fit_auto(*planted(kind, n, s), min_improvement=margin), PiecewiseFit)
                    for s in range(trials)
                ]
                rates.append(np.mean(picks))
            print(f"| {n} | {margin:.0%} | {rates[0]:.0%} | {rates[1]:.0%} |")


if __name__ == "__main__":
    timing_table()
    selection_table()
