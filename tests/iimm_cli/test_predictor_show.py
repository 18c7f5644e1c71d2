"""`iimm predictors show` says when a predictor is stale, and why (the API's stale_reason)."""

from __future__ import annotations

from typing import Any

import pytest

from iimm_cli import predictors


def _body(stale: bool) -> dict[str, Any]:
    reason = "2 newer evaluation(s) since fitted: refit with POST /v1/predictors"
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
            "2 newer evaluation(s) since fitted: refit with POST /v1/predictors",
        ]
    else:
        assert stale_lines == []
