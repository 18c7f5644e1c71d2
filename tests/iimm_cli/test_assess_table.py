"""`iimm assess`'s table puts the gain and fine-tuned accuracy the zero-shot-accuracy predictor
gives beside the headline predictor's, at 3 decimals, and marks extrapolated predictions (a
stand-in client returns a finished assess job's document)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from iimm_cli import predictors


def _interval(value: float) -> dict[str, float]:
    return {"value": value, "lower": value - 0.25, "upper": value + 0.25, "level": 0.95}


def _pred(feature: str, value: float, extrapolated: bool = False) -> dict[str, Any]:
    return {"feature": feature, "prediction": _interval(value), "extrapolated": extrapolated}


class FakeClient:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return {"id": "job_1", "status": "queued"}

    def wait_job(self, job_id: str, **kw: Any) -> dict[str, Any]:
        return {"id": job_id, "status": "succeeded", "result": self.doc}


def _table(
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    baseline: Any,
    gain: Any = None,
    finetuned: Any = None,
) -> str:
    doc = {
        "zero_shot_accuracy": 0.5, "iimm": {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4},
        "methods": {"full": {"gain": gain or _pred("iimm", 0.5), "finetuned_accuracy": finetuned,
                             "ood_change": None, "gain_from_zero_shot_accuracy": baseline}},
    }  # fmt: skip
    monkeypatch.setattr(predictors.ApiClient, "from_args", lambda args: FakeClient(doc))
    args = argparse.Namespace(model_id="mdl_1", dataset_id="dst_1", bootstrap=10,
                              no_wait=False, json=False)  # fmt: skip
    assert predictors.run_assess(args) == 0
    return str(capsys.readouterr().out)


def test_assess_table_shows_the_zero_shot_predictor_beside(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _table(monkeypatch, capsys, _pred("zero_shot_accuracy", -0.125))
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "full: gain (from iimm)" in line)
    assert "full: gain (from zero_shot_accuracy)" in lines[head + 1]
    assert "-0.125" in lines[head + 1] and "0.5" in lines[head]
    without = _table(monkeypatch, capsys, None)
    assert "full: gain (from iimm)" in without and "zero_shot_accuracy)" not in without


def _row(out: str, label: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith(label + "  ")]
    return line[len(label) :].strip()


def test_assess_table_prints_3_decimals_and_both_implied_accuracies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = {**_pred("zero_shot_accuracy", -0.125), "finetuned_accuracy": _interval(0.4375)}
    gain = _pred("iimm", 0.100152)
    out = _table(monkeypatch, capsys, baseline, gain, finetuned=_interval(0.550076))
    assert _row(out, "full: gain (from iimm)") == "0.100  [-0.150, 0.350]"
    assert _row(out, "full: gain (from zero_shot_accuracy)") == "-0.125  [-0.375, 0.125]"
    assert _row(out, "full: finetuned accuracy (from iimm)") == "0.550  [0.300, 0.800]"
    assert _row(out, "full: finetuned accuracy (from zero_shot_accuracy)") == (
        "0.438  [0.188, 0.688]"
    )
    assert _row(out, "zero-shot accuracy") == "0.500"
    assert _row(out, "iimm") == "0.300  [0.200, 0.400]"
    assert "95% interval" in out.splitlines()[0] and "extrapolated" not in out
    # an older document without the baseline's accuracy: no row for it
    old = _table(monkeypatch, capsys, _pred("zero_shot_accuracy", -0.125))
    assert "finetuned accuracy (from zero_shot_accuracy)" not in old


def test_assess_table_marks_extrapolated_predictions_and_says_what_it_means(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gain = _pred("iimm", 0.5, extrapolated=True)
    out = _table(monkeypatch, capsys, _pred("zero_shot_accuracy", 0.25), gain, _interval(0.75))
    assert _row(out, "full: gain (from iimm)") == "0.500  [0.250, 0.750]  † extrapolated"
    assert _row(out, "full: finetuned accuracy (from iimm)").endswith("† extrapolated")
    assert _row(out, "full: gain (from zero_shot_accuracy)") == "0.250  [0.000, 0.500]"
    assert out.splitlines()[-1] == predictors.EXTRAPOLATED_NOTE
    assert "outside the range the predictor was fitted on" in predictors.EXTRAPOLATED_NOTE
    zs_only = _table(monkeypatch, capsys, _pred("zero_shot_accuracy", 0.25, extrapolated=True))
    assert _row(zs_only, "full: gain (from zero_shot_accuracy)").endswith("† extrapolated")
    assert "† extrapolated" not in _row(zs_only, "full: gain (from iimm)")
    assert zs_only.splitlines()[-1] == predictors.EXTRAPOLATED_NOTE


class RecordingClient(FakeClient):
    def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        self.sent = kw["json"]
        return super().request(method, path, **kw)


def test_assess_by_leads_with_the_chosen_predictor_says_why_and_marks_stale(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from iimm_cli import build_parser

    why = ("by=best: the comparison over 5 tasks ranks zero_shot_accuracy first (ρ vs G -0.90); "
           "the gain predictor used was fitted on 4 tasks; it is stale, there is no other on "
           "zero_shot_accuracy: see stale_reason")  # fmt: skip
    stale = ("gain predictor prd_1 (zero_shot_accuracy) is stale: 1 of its 4 point(s) changed "
             "since fitted (dst_1): refit on the datasets with the same options: iimm predictors "
             "fit --base-model-id m --method full --feature zero_shot_accuracy")  # fmt: skip
    request = ' (POST /v1/predictors {"base_model_id":"m","method":"full"})'

    iimm = {**_pred("iimm", 0.1), "finetuned_accuracy": _interval(0.55)}
    doc = {
        "zero_shot_accuracy": 0.5, "iimm": {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4},
        "methods": {"full": {
            "feature": "zero_shot_accuracy", "predicted_by": why,
            "gain": _pred("zero_shot_accuracy", -0.125), "finetuned_accuracy": _interval(0.4375),
            "ood_change": None, "gain_from_zero_shot_accuracy": None, "gain_from_iimm": iimm,
            "stale": True, "stale_reason": stale + request,
        }},
    }  # fmt: skip
    fake = RecordingClient(doc)
    monkeypatch.setattr(predictors.ApiClient, "from_args", lambda args: fake)
    args = build_parser().parse_args(["assess", "--model-id", "m", "--dataset-id", "d",
                                      "--by", "zero_shot"])  # fmt: skip
    assert args.handler(args) == 0
    assert fake.sent["by"] == "zero_shot"
    out = capsys.readouterr().out
    assert _row(out, "full: gain (from zero_shot_accuracy)") == "-0.125  [-0.375, 0.125]"
    assert _row(out, "full: gain (from iimm)") == "0.100  [-0.150, 0.350]"
    assert _row(out, "full: finetuned accuracy (from iimm)") == "0.550  [0.300, 0.800]"
    lines = out.splitlines()
    assert f"full: gain {why.replace('see stale_reason', 'see STALE below')}" in lines
    assert f"full: STALE: {stale}" in lines  # the CLI command, not the API request
    with pytest.raises(SystemExit):
        build_parser().parse_args(["assess", "--model-id", "m", "--dataset-id", "d", "--by", "x"])


def test_assess_table_marks_a_stale_prediction_beside(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    beside = {**_pred("zero_shot_accuracy", -0.125), "finetuned_accuracy": _interval(0.4375),
              "stale": True}  # fmt: skip
    out = _table(monkeypatch, capsys, beside)
    assert _row(out, "full: gain (from zero_shot_accuracy)") == "-0.125  [-0.375, 0.125] (stale)"
    assert _row(out, "full: finetuned accuracy (from zero_shot_accuracy)") == (
        "0.438  [0.188, 0.688] (stale)"
    )
    assert "(stale)" not in _row(out, "full: gain (from iimm)")
