"""`iimm predictors show` says when a predictor is stale, and why (the API's stale_reason)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from iimm_cli import predictors


def _body(stale: bool) -> dict[str, Any]:
    reason = "1 of its 4 point(s) changed since fitted (dst_1: dataset deleted): refit ..."
    return {
        "id": "prd_1", "target": "gain", "feature": "iimm", "method": "full", "n": 4,
        "slope": 1.5, "fitted_range": {"min": 0.1, "max": 0.5}, "datasets": ["dst_1"],
        "stale": stale, "stale_reason": reason if stale else None,
    }  # fmt: skip


@pytest.mark.parametrize("stale", [True, False])
def test_show_marks_a_stale_predictor(capsys: pytest.CaptureFixture[str], stale: bool) -> None:
    predictors._print_predictor(_body(stale), as_json=False)
    stale_lines = [line for line in capsys.readouterr().out.splitlines() if "stale" in line]
    if stale:
        (line,) = stale_lines
        assert line.split(None, 1) == [
            "stale",
            "1 of its 4 point(s) changed since fitted (dst_1: dataset deleted): refit ...",
        ]
    else:
        assert stale_lines == []


class _Client:
    """Answers GET /v1/predictors with two predictors, one of them stale."""

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", "/v1/predictors")
        common = {"target": "gain", "feature": "iimm", "method": "full", "n": 4, "r_squared": 0.5}
        return {"items": [
            {**common, "id": "prd_1", "stale": True, "changed_points": 2, "stale_reason": "x"},
            {**common, "id": "prd_2", "stale": False, "changed_points": 0, "stale_reason": None},
            {**common, "id": "prd_3", "stale": True, "changed_points": 1,
             "stale_reason": "1 of its 4 point(s) changed since fitted (...): refitted as prd_4",
             "refitted_as": "prd_4"},
        ]}  # fmt: skip


def test_list_has_a_stale_column(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictors.ApiClient, "from_args", classmethod(lambda cls, a: _Client()))
    args = argparse.Namespace(base_model_id=None, json=False)
    assert predictors.run_list(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["predictor", "fit", "stale"]
    rows = {line.split()[0]: line for line in lines[2:] if line.startswith("prd_")}
    assert rows["prd_1"].endswith("yes: 2 point(s) changed")
    assert rows["prd_2"].endswith("  no")
    assert rows["prd_3"].endswith("  superseded by prd_4")
    assert lines[-1] == "a stale predictor's refit: iimm predictors show ID"
