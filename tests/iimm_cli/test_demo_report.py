"""The demo's report tables on hand-made API answers (no service, no model)."""

from __future__ import annotations

from typing import Any

import pytest

from iimm_cli.demo_loop import FEATURES, TARGETS, LoopResult
from iimm_cli.demo_report import (
    EXTRAPOLATED,
    HELD_OUT_LEGEND,
    TERMS,
    comparison_rows,
    comparison_summary,
    held_out_rows,
    matrix_rows,
    print_report,
)


def _prediction(value: float, extrapolated: bool) -> dict[str, Any]:
    return {"prediction": {"value": value, "lower": value - 0.5, "upper": value + 0.5,
                           "level": 0.95}, "extrapolated": extrapolated}  # fmt: skip


def _result() -> LoopResult:
    result = LoopResult({"id": "mdl"}, {"colours": "d_col", "sizes": "d_siz", "textures": "d_tex"})
    result.matrix = {
        "zero_shot": {"d_col": 1.0, "d_siz": 0.98, "d_tex": 0.40},
        "rows": [
            {"train_dataset_id": "d_col", "train_dataset_name": "colours-1",
             "accuracies": {"d_col": 1.0}, "gain": None, "ood_change": -0.001,
             "flag": "zero-shot error 0.000 is below min_zero_shot_error 0.05: ..."},
            {"train_dataset_id": "d_siz", "train_dataset_name": "sizes-1",
             "accuracies": {"d_siz": 0.98}, "gain": 0.0, "ood_change": -0.01,
             "flag": "zero-shot error 0.020 is below min_zero_shot_error 0.05: ..."},
            {"train_dataset_id": "d_tex", "train_dataset_name": "textures-1",
             "accuracies": {"d_tex": 0.70}, "gain": 0.5, "ood_change": 0.02, "flag": None},
        ],
    }  # fmt: skip
    result.first_matrix = result.matrix
    result.predictions = {
        "sizes": {"iimm:gain": _prediction(0.3, True),
                  "zero_shot_accuracy:gain": _prediction(0.1, False)},
        "textures": {"iimm:gain": _prediction(0.4, False),
                     "zero_shot_accuracy:gain": _prediction(0.6, True)},
    }  # fmt: skip
    return result


def test_extrapolated_predictions_are_marked_and_others_not() -> None:
    rows = {r[0]: r for r in held_out_rows(_result())}
    assert rows["sizes"][1].endswith(EXTRAPOLATED) and not rows["sizes"][2].endswith(EXTRAPOLATED)
    assert not rows["textures"][1].endswith(EXTRAPOLATED)
    assert rows["textures"][2] == f"+0.60 [+0.10, +1.10]{EXTRAPOLATED}"


def test_flagged_tasks_carry_the_same_flag_in_both_tables() -> None:
    result = _result()
    held = {r[0]: r for r in held_out_rows(result)}
    matrix = {r[0]: r for r in matrix_rows(result.matrix)}
    assert held["sizes"][3] == "+0.00"  # G as measured, beside its flag
    assert held["sizes"][4] == matrix["sizes"][5]
    assert held["sizes"][4].startswith("flagged: low zero-shot error 0.020")
    assert matrix["colours"][5].startswith("flagged: low zero-shot error 0.000")
    assert held["textures"][4] == matrix["textures"][5] == ""


def _predictor(n: int) -> dict[str, Any]:
    return {"slope": 0.5, "slope_se": 0.1, "n": n, "pearson_r": 0.9, "slope_pvalue": 0.01,
            "loo_rmse": 0.2}  # fmt: skip


def _full_result() -> LoopResult:
    result = _result()
    result.assessments = {
        t: {"zero_shot_accuracy": result.matrix["zero_shot"][d],
            "iimm": {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4}}
        for t, d in result.datasets.items()
    }  # fmt: skip
    result.predictors = {(f, t): _predictor(3) for f in FEATURES for t in TARGETS}
    result.comparison = {
        "n_tasks": 1, "datasets": ["d_tex"], "best_measure": "logme",
        "verdict": "over 1 tasks logme predicts G best (logme ρ +0.90, p 0.010)",
        "items": [{"measure": "logme", "n": 1, "spearman_gain": 0.9, "spearman_gain_pvalue": 0.01,
                   "r_squared": 0.8, "spearman_accuracy": 0.7}],
        "flagged": [{"dataset_id": "d_col", "dataset_name": "colours-1",
                     "reason": "zero-shot error 0.000 ..."}],
    }  # fmt: skip
    return result


def test_comparison_states_best_measure_verdict_n_and_what_it_covers() -> None:
    text = comparison_summary(_full_result())
    assert "Best measure: logme." in text
    assert "Verdict: over 1 tasks logme predicts G best (logme ρ +0.90, p 0.010)" in text
    assert "Covers n = 1 fine-tuned tasks (textures)" in text
    assert "Left out, flagged (low zero-shot error): colours" in text
    assert "Not in it: the held-out tasks (sizes)," in text  # textures is covered, sizes not
    rows = comparison_rows(_full_result().comparison)
    assert rows == [["logme", "1", "+0.90", "0.010", "0.800", "+0.70"]]


def test_report_prints_the_summary_and_the_extrapolation_legend(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_report(_full_result())
    out = capsys.readouterr().out
    assert comparison_summary(_full_result()) in out
    assert HELD_OUT_LEGEND in out


def test_report_defines_its_terms_once_before_the_tables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_report(_full_result())
    out = capsys.readouterr().out
    assert out.count(TERMS) == 1 and out.index(TERMS) < out.index("Accuracy matrix")
    for term in ("(acc_ft - acc_zs) / (1 - acc_zs)", "negative = forgetting", "LOO RMSE",
                 "G for target gain, accuracy fraction for target ood_change"):  # fmt: skip
        assert term in TERMS
