"""compare_measures (the paper's Tables 1-3) and rank_candidates."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from app.measures.prediction import (
    Candidate,
    compare_measures,
    fit_linear,
    implied_accuracy,
    predict,
    rank_candidates,
)


def _tasks(seed: int = 0, n: int = 9) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    iimm = rng.uniform(0.2, 0.6, n)
    gain = 0.1 + 1.5 * iimm + rng.normal(0, 0.03, n)
    acc_zs = rng.uniform(0.3, 0.8, n)
    acc_ft = acc_zs + gain * (1 - acc_zs)
    noise = rng.normal(size=n)
    return {"iimm": iimm, "noise": noise}, gain, acc_ft


def test_compare_matches_scipy() -> None:
    features, gain, acc = _tasks()
    rows = compare_measures(features, gain, acc)
    assert [r.measure for r in rows] == ["iimm", "noise"]  # input order
    for row in rows:
        x = features[row.measure]
        rg, ra = stats.spearmanr(x, gain), stats.spearmanr(x, acc)
        assert row.spearman_gain == pytest.approx(rg.statistic)
        assert row.spearman_gain_pvalue == pytest.approx(rg.pvalue)
        assert row.spearman_accuracy == pytest.approx(ra.statistic)
        assert row.spearman_accuracy_pvalue == pytest.approx(ra.pvalue)
        ref = stats.linregress(x, gain)
        assert row.r_squared == pytest.approx(ref.rvalue**2)
        assert row.slope_pvalue == pytest.approx(ref.pvalue)
        assert row.n == 9 and row.missing == ()
    assert rows[0].spearman_gain > 0.9 and rows[0].r_squared > rows[1].r_squared


def test_missing_measure_values_are_dropped_per_measure() -> None:
    features, gain, acc = _tasks()
    features["entropy"] = features["iimm"].copy()
    features["entropy"][[1, 4]] = np.nan
    rows = {r.measure: r for r in compare_measures(features, gain, acc)}
    keep = np.setdiff1d(np.arange(9), [1, 4])
    assert rows["entropy"].n == 7 and rows["entropy"].missing == (1, 4)
    expected = stats.spearmanr(features["iimm"][keep], gain[keep]).statistic
    assert rows["entropy"].spearman_gain == pytest.approx(expected)
    assert rows["iimm"].n == 9


def test_compare_errors_are_clear() -> None:
    features, gain, acc = _tasks()
    bad_gain = gain.copy()
    bad_gain[3] = np.nan
    with pytest.raises(ValueError, match=r"gain has a non-finite value \(nan\) at index 3 \('d'\)"):
        compare_measures(features, bad_gain, acc, names=list("abcdefghi"))
    sparse = {"entropy": np.r_[0.1, 0.2, [np.nan] * 7]}
    with pytest.raises(ValueError, match=r"measure 'entropy' .* got 2: 1 more fine-tuned task"):
        compare_measures(sparse, gain, acc)
    kept = compare_measures({**features, **sparse}, gain, acc, skip_insufficient=True)
    assert [r.measure for r in kept] == ["iimm", "noise"]
    assert [r.measure for r in compare_measures(sparse, gain, acc, skip_insufficient=True)] == []
    with pytest.raises(ValueError, match="measure 'flat' is constant"):
        compare_measures({"flat": np.full(9, 0.5)}, gain, acc)
    with pytest.raises(ValueError, match=r"measure 'iimm' has a non-finite value \(inf\)"):
        compare_measures({"iimm": np.r_[np.inf, features["iimm"][1:]]}, gain, acc)
    with pytest.raises(ValueError, match="measure 'short' has 3 values for 9 tasks"):
        compare_measures({"short": [0.1, 0.2, 0.3]}, gain, acc)
    with pytest.raises(ValueError, match=r"differ in length \(9 vs 8\)"):
        compare_measures(features, gain, acc[:8])


def _fits() -> tuple:
    gain_fit = fit_linear([0.2, 0.3, 0.4, 0.5, 0.6], [0.35, 0.5, 0.62, 0.8, 0.88])
    ood_fit = fit_linear([0.2, 0.3, 0.4, 0.5, 0.6], [-0.01, -0.03, -0.06, -0.07, -0.1])
    return gain_fit, ood_fit


def test_rank_orders_by_predicted_accuracy_with_intervals() -> None:
    gain_fit, ood_fit = _fits()
    candidates = [
        Candidate("clip", "full", gain_fit, feature=0.3, acc_zs=0.6, ood_change_fit=ood_fit),
        Candidate("siglip", "full", gain_fit, feature=0.5, acc_zs=0.5, ood_change_fit=ood_fit),
        Candidate("coca", "lora", gain_fit, feature=0.45, acc_zs=0.7),
    ]
    ranked = rank_candidates(candidates)
    values = [r.accuracy.value for r in ranked]
    assert values == sorted(values, reverse=True)
    assert [r.rank for r in ranked] == [1, 2, 3]
    for r in ranked:
        c = next(c for c in candidates if (c.base_model, c.method) == (r.base_model, r.method))
        assert r.gain == predict(gain_fit, c.feature)
        assert r.accuracy.value == pytest.approx(implied_accuracy(c.acc_zs, r.gain.value))
        assert r.accuracy.lower <= r.accuracy.value <= r.accuracy.upper
        has_forgetting = c.ood_change_fit is not None
        assert (r.ood_change is not None) is has_forgetting
        if has_forgetting:
            assert r.ood_change == predict(ood_fit, c.feature)


def test_rank_uses_the_forgetting_feature_and_breaks_ties_stably() -> None:
    gain_fit, ood_fit = _fits()
    twin = {"gain_fit": gain_fit, "feature": 0.4, "acc_zs": 0.5}
    ranked = rank_candidates(
        [
            Candidate("b", "full", **twin, ood_change_fit=ood_fit, ood_change_feature=0.6),
            Candidate("a", "full", **twin),
        ],
        level=0.8,
    )
    assert [r.base_model for r in ranked] == ["a", "b"]
    assert ranked[1].ood_change == predict(ood_fit, 0.6, level=0.8)
    assert rank_candidates([]) == []


def test_prediction_package_imports_no_heavy_frameworks() -> None:
    code = (
        "import sys, app.measures.prediction; "
        "print(sorted(m for m in ('torch', 'sqlalchemy', 'fastapi', 'celery') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
