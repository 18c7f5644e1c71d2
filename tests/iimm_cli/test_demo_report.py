"""The demo's report tables on hand-made API answers (no service, no model)."""

from __future__ import annotations

from typing import Any

from iimm_cli.demo_loop import LoopResult
from iimm_cli.demo_report import EXTRAPOLATED, held_out_rows, matrix_rows


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
