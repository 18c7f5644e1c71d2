"""`iimm assess`'s table puts the gain the zero-shot-accuracy predictor gives beside the
headline predictor's (a stand-in client returns a finished assess job's document)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from iimm_cli import predictors


def _pred(feature: str, value: float) -> dict[str, Any]:
    interval = {"value": value, "lower": value - 0.25, "upper": value + 0.25, "level": 0.95}
    return {"feature": feature, "prediction": interval}


class FakeClient:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return {"id": "job_1", "status": "queued"}

    def wait_job(self, job_id: str, **kw: Any) -> dict[str, Any]:
        return {"id": job_id, "status": "succeeded", "result": self.doc}


def _table(monkeypatch: pytest.MonkeyPatch, capsys: Any, baseline: Any) -> str:
    doc = {
        "zero_shot_accuracy": 0.5, "iimm": {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4},
        "methods": {"full": {"gain": _pred("iimm", 0.5), "finetuned_accuracy": None,
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
