"""The predictors' data plumbing on hand-made matrices (no database, no stack)."""

from __future__ import annotations

import pytest

from app.errors import InvalidError
from app.matrices.service import Matrix, MatrixRow
from app.models.predictors import Predictor
from app.predictors.assess import headline
from app.predictors.data import TaskScores, finetuned_rows, training_points


def _matrix() -> Matrix:
    rows = [
        MatrixRow("a", "ftm_1", {"a": 0.9, "b": 0.2}, 0.8, -0.1),
        MatrixRow("b", "ftm_2", {"a": 0.3, "b": 0.7}, 0.5, -0.2),
        MatrixRow("c", "ftm_3", {"c": 0.6}, 0.4, None),
        MatrixRow("d", "ftm_4", {}, None, None),
        MatrixRow("e", "ftm_5", {"e": 0.5}, 0.3, 0.0),
    ]
    return Matrix("mdl_1", "full", ["a", "b", "c", "d", "e"], {}, rows)


SCORES = {
    "a": TaskScores({"iimm": 0.3}, zero_shot_accuracy=0.4),
    "b": TaskScores({"iimm": 0.5}, zero_shot_accuracy=0.5),
    "c": TaskScores({"iimm": None}, zero_shot_accuracy=0.2),
    "d": TaskScores({"iimm": 0.1}),
}


def test_default_points_skip_with_reasons() -> None:
    rows = finetuned_rows(_matrix())
    points, skipped = training_points(rows, SCORES, feature="iimm", target="gain")
    assert [(p.dataset_id, p.x, p.y) for p in points] == [("a", 0.3, 0.8), ("b", 0.5, 0.5)]
    reasons = {s["dataset_id"]: s["reason"] for s in skipped}
    assert "undefined" in reasons["c"] and "not evaluated" in reasons["d"]
    assert reasons["e"].startswith("no iimm score for dataset e: run a score job")
    points, _ = training_points(rows, SCORES, feature="zero_shot_accuracy", target="gain")
    assert [p.x for p in points] == [0.4, 0.5, 0.2]
    points, skipped = training_points(rows, SCORES, feature="iimm", target="ood_change")
    assert [p.y for p in points] == [-0.1, -0.2]
    _, skipped = training_points(rows, SCORES, feature="logme", target="gain")
    assert skipped[0]["reason"].startswith("no logme score for dataset a: run a score job")


def test_requested_points_must_all_qualify() -> None:
    rows = finetuned_rows(_matrix())
    points, _ = training_points(rows, SCORES, feature="iimm", target="gain", requested=["b", "a"])
    assert [p.dataset_id for p in points] == ["b", "a"]
    with pytest.raises(InvalidError, match=r"c: 'iimm' is undefined.*z: no fine-tuned row"):
        training_points(rows, SCORES, feature="iimm", target="gain", requested=["a", "c", "z"])


def test_headline_prefers_iimm_then_newest() -> None:
    def p(pid: str, feature: str, target: str = "gain") -> Predictor:
        return Predictor(id=pid, method="full", feature=feature, target=target)

    chosen = headline([p("prd_1", "iimm"), p("prd_2", "logme"), p("prd_3", "gbc", "ood_change"),
                       p("prd_4", "sfda", "ood_change")])  # fmt: skip
    assert chosen[("full", "gain")].id == "prd_1"
    assert chosen[("full", "ood_change")].id == "prd_4"


def test_low_zero_shot_error_rows_are_flagged_and_left_out_of_gain_fits() -> None:
    from app.matrices.arithmetic import low_error_flag

    assert low_error_flag(0.97, 0.05) is not None and low_error_flag(0.95, 0.05) is None
    assert low_error_flag(None, 0.05) is None and low_error_flag(0.999, 0.0) is None
    flagged = MatrixRow(
        "b", "ftm_2", {"a": 0.3, "b": 0.7}, 0.5, -0.2, flag=low_error_flag(0.98, 0.05)
    )
    rows = {**finetuned_rows(_matrix()), "b": flagged}
    points, skipped = training_points(rows, SCORES, feature="iimm", target="gain")
    assert [p.dataset_id for p in points] == ["a"]
    reason = next(s["reason"] for s in skipped if s["dataset_id"] == "b")
    assert "zero-shot error 0.020 is below min_zero_shot_error 0.05" in reason
    points, _ = training_points(rows, SCORES, feature="iimm", target="ood_change")
    assert [p.dataset_id for p in points] == ["a", "b"]  # the ood change does not divide by it
    with pytest.raises(InvalidError, match=r"b: zero-shot error 0\.020"):
        training_points(rows, SCORES, feature="iimm", target="gain", requested=["a", "b"])
