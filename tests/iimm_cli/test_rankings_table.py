"""`iimm rankings` prints which predictor each row is ranked by, the accuracy from IIMM and
from zero-shot accuracy side by side (the row's own prediction in its column), and passes
`--by` to the API (a stand-in client records the request)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from iimm_cli import build_parser, rankings


def _interval(value: float) -> dict[str, float]:
    return {"value": value, "lower": value - 0.1, "upper": value + 0.1, "level": 0.95}


def _item(rank: int, feature: str, own: float, beside: float) -> dict[str, Any]:
    other = {"predictor_id": "prd_x", "gain": _interval(0.0),
             "finetuned_accuracy": _interval(beside), "extrapolated": False}  # fmt: skip
    return {
        "rank": rank, "base_model_name": f"m{rank}", "method": "full", "feature": feature,
        "finetuned_accuracy": _interval(own), "extrapolated": False, "ood_change": None,
        "ranked_by": f"by=best: because {rank}",
        "gain_from_zero_shot_accuracy": other if feature == "iimm" else None,
        "gain_from_iimm": other if feature != "iimm" else None,
    }  # fmt: skip


class FakeClient:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body, self.params = body, {}

    def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", "/v1/rankings")
        self.params = kw["params"]
        return self.body


def test_rankings_table(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    body = {
        "dataset_id": "dst_1", "dataset_name": "digits", "level": 0.95, "by": "zero_shot",
        "items": [_item(1, "zero_shot_accuracy", 0.812, 0.701), _item(2, "iimm", 0.655, 0.6)],
        "unranked": [{"base_model_name": "lonely", "method": None, "reason": "no predictor"}],
    }  # fmt: skip
    fake = FakeClient(body)
    monkeypatch.setattr(rankings.ApiClient, "from_args", lambda args: fake)
    args = build_parser().parse_args(["rankings", "--dataset-id", "dst_1", "--by", "zero_shot"])
    assert isinstance(args, argparse.Namespace) and args.handler(args) == 0
    assert fake.params == {"dataset_id": "dst_1", "by": "zero_shot", "level": 0.95}
    lines = capsys.readouterr().out.splitlines()
    assert "ranked by=zero_shot" in lines[0]
    first, second = lines[3], lines[4]
    # columns: acc from iimm, then acc from zero-shot accuracy; each row's own in its column
    assert first.index("0.701") < first.index("0.812") and "zero_shot_accuracy" in first
    assert second.index("0.655") < second.index("0.600") and " iimm " in second
    assert "1. m1 (full): by=best: because 1" in lines
    assert "not ranked: lonely: no predictor" in lines


def test_rankings_refuses_an_unknown_by() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rankings", "--dataset-id", "d", "--by", "logme"])


def test_rankings_marks_a_row_whose_predictor_is_stale() -> None:
    why = "gain predictor prd_1 (iimm) is stale: 2 newer evaluation(s)"
    stale = {**_item(1, "iimm", 0.7, 0.6), "stale": True, "stale_reason": why}
    body = {"items": [stale, _item(2, "iimm", 0.6, 0.5)], "unranked": []}
    _, notes = rankings.format_ranking(body)
    assert notes == ["1. m1 (full): by=best: because 1",
                     f"1. STALE: {why}",
                     "2. m2 (full): by=best: because 2"]  # fmt: skip


def test_rankings_marks_a_stale_prediction_beside_the_rows_own() -> None:
    item = _item(1, "zero_shot_accuracy", 0.812, 0.701)
    fresh = rankings.format_ranking({"items": [item], "unranked": []})[0][0]
    assert fresh[4] == "0.701  [0.601, 0.801]"
    item["gain_from_iimm"] = {**item["gain_from_iimm"], "stale": True}
    (row,), _ = rankings.format_ranking({"items": [item], "unranked": []})
    assert row[4] == "0.701  [0.601, 0.801] (stale)" and "stale" not in row[5]


def test_rankings_say_which_predictor_gives_ood_change() -> None:
    why = (
        "ood_change from prd_9 (iimm, fitted on 4 tasks): IIMM's forgetting predictor, "
        "whatever `by` says (the comparison ranks measures against gain, not forgetting)"
    )
    item = {**_item(1, "zero_shot_accuracy", 0.8, 0.7), "ood_change_by": why}
    _, notes = rankings.format_ranking({"items": [item], "unranked": []})
    assert notes == ["1. m1 (full): by=best: because 1", f"1. {why}"]


def test_rankings_stale_lines_read_as_cli() -> None:
    """The sentence's pointer to `stale_reason` points at the STALE line, which gives the
    refit as the `iimm predictors fit` command without the API request beside it."""
    command = "iimm predictors fit --base-model-id mdl_1 --method full --dataset-id dst_2"
    request = ('POST /v1/predictors {"base_model_id":"mdl_1","method":"full",'
               '"dataset_ids":["dst_2"]}')  # fmt: skip
    why = (f"gain predictor prd_1 (iimm) is stale: 1 of its 3 point(s) changed since fitted "
           f"(dst_1: no iimm score): refit on the datasets it can still use with the same "
           f"options: {command} ({request})")  # fmt: skip
    item = {**_item(1, "iimm", 0.7, 0.6), "stale": True, "stale_reason": why,
            "ranked_by": "by=best: no comparison yet (2 of the 3 tasks needed have scores), so "
            "IIMM's gain predictor, fitted on 3 tasks; it is stale, there is no other on iimm: "
            "see stale_reason"}  # fmt: skip
    _, notes = rankings.format_ranking({"items": [item], "unranked": []})
    assert notes[0].endswith("it is stale, there is no other on iimm: see STALE below")
    assert notes[1] == f"1. STALE: {why.replace(f' ({request})', '')}"
    assert notes[1].endswith(command) and "POST" not in notes[1]
