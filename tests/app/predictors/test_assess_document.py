"""The per-method part of the `assess` document (`app.predictors.assess._per_method`) on
hand-made predictions: the headline gain comes from the predictor `by` picks (the choice
`GET /v1/rankings` makes), `predicted_by` says why, the other gain predictions stand beside it
with the fine-tuned accuracy they imply, and a stale predictor used is named."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app.predictors.choice import RankBy
from app.predictors.schemas import Interval, PredictionRead


def _prediction(pid: str, feature: str, gain: float, accuracy: float) -> PredictionRead:
    return PredictionRead(
        predictor_id=pid, method="full", feature=feature, target="gain", dataset_id="dst_1",
        feature_value=0.3, zero_shot_accuracy=0.5, se=0.1, df=3, extrapolated=feature == "iimm",
        prediction=Interval(value=gain, lower=gain - 0.2, upper=gain + 0.2, level=0.95),
        finetuned_accuracy=Interval(value=accuracy, lower=0.4, upper=0.9, level=0.95),
    )  # fmt: skip


IIMM: Any = SimpleNamespace(id="prd_2", feature="iimm", method="full", target="gain", n=5)
ZS: Any = SimpleNamespace(
    id="prd_1", feature="zero_shot_accuracy", method="full", target="gain", n=4
)
DONE = {"prd_2": _prediction("prd_2", "iimm", 0.4, 0.7),
        "prd_1": _prediction("prd_1", "zero_shot_accuracy", 0.2, 0.6)}  # fmt: skip
ZS_FIRST: Any = SimpleNamespace(
    n_tasks=5, best_measure="zero_shot_accuracy",
    items=[SimpleNamespace(measure="zero_shot_accuracy", spearman_gain=-0.9),
           SimpleNamespace(measure="iimm", spearman_gain=0.1)],
)  # fmt: skip


def _entry(by: RankBy, comparison: Any, stale: dict[str, str] | None = None) -> dict[str, Any]:
    from app.predictors.assess import _per_method

    asked: list[str] = []

    def comparison_of(method: str) -> Any:
        asked.append(method)
        return comparison

    entry = _per_method([ZS, IIMM], DONE, by, comparison_of, stale or {})["full"]
    assert asked == (["full"] if by is RankBy.best else [])
    return entry


def test_without_a_comparison_iimm_leads_and_zero_shot_stands_beside() -> None:
    entry = _entry(RankBy.best, None)
    assert entry["feature"] == "iimm" and entry["gain"]["predictor_id"] == "prd_2"
    assert entry["predicted_by"].startswith("by=best: no comparison")
    beside = entry["gain_from_zero_shot_accuracy"]
    assert beside["predictor_id"] == "prd_1" and beside["prediction"]["value"] == 0.2
    assert beside["finetuned_accuracy"]["value"] == 0.6 and beside["extrapolated"] is False
    assert entry["finetuned_accuracy"]["value"] == 0.7 and entry["gain"]["extrapolated"] is True
    assert "finetuned_accuracy" not in entry["gain"] and entry["gain_from_iimm"] is None
    assert entry["stale"] is False and entry["stale_reason"] is None


def test_best_leads_with_what_the_comparison_ranks_first() -> None:
    entry = _entry(RankBy.best, ZS_FIRST)
    assert entry["feature"] == "zero_shot_accuracy" and entry["gain"]["predictor_id"] == "prd_1"
    assert entry["finetuned_accuracy"]["value"] == 0.6
    assert entry["predicted_by"] == (
        "by=best: the comparison over 5 tasks ranks zero_shot_accuracy first (ρ vs G -0.90); "
        "the gain predictor used was fitted on 4 tasks"
    )
    assert entry["gain_from_zero_shot_accuracy"] is None  # the headline's own
    assert entry["gain_from_iimm"]["predictor_id"] == "prd_2"
    assert entry["gain_from_iimm"]["finetuned_accuracy"]["value"] == 0.7


@pytest.mark.parametrize(("by", "own"), [(RankBy.iimm, "prd_2"), (RankBy.zero_shot, "prd_1")])
def test_by_overrides_the_comparison(by: RankBy, own: str) -> None:
    entry = _entry(by, ZS_FIRST)
    assert entry["gain"]["predictor_id"] == own
    feature = DONE[own].feature
    n = 5 if feature == "iimm" else 4
    assert (
        entry["predicted_by"]
        == f"by={by.value}: the gain predictor on {feature}, fitted on {n} tasks"
    )
    other = "gain_from_iimm" if by is RankBy.zero_shot else "gain_from_zero_shot_accuracy"
    assert entry[other]["predictor_id"] != own


def test_by_without_such_a_predictor_leaves_gain_empty_and_says_why() -> None:
    from app.predictors.assess import _per_method

    entry = _per_method([ZS], DONE, RankBy.iimm, lambda m: None, {})["full"]
    assert entry["gain"] is None and entry["feature"] is None
    assert "no gain predictor on iimm" in entry["predicted_by"]
    assert entry["gain_from_zero_shot_accuracy"]["predictor_id"] == "prd_1"  # still shown


def test_a_stale_headline_predictor_is_named() -> None:
    why = "2 newer evaluation(s) since fitted: refit with POST /v1/predictors"
    entry = _entry(RankBy.best, ZS_FIRST, {"prd_1": why, "prd_2": why})
    assert entry["stale"] is True
    assert entry["stale_reason"] == f"gain predictor prd_1 (zero_shot_accuracy) is stale: {why}"
    beside = _entry(RankBy.iimm, ZS_FIRST, {"prd_1": why})
    assert beside["stale"] is False  # only beside: the side prediction carries the flag
    assert beside["gain_from_zero_shot_accuracy"]["predictor_id"] == "prd_1"
    assert beside["gain_from_zero_shot_accuracy"]["stale"] is True
    assert _entry(RankBy.iimm, ZS_FIRST)["gain_from_zero_shot_accuracy"]["stale"] is False


def test_a_fresh_predictor_leads_over_a_newer_stale_one_on_the_same_measure() -> None:
    from app.predictors.assess import _per_method

    why = "1 newer evaluation(s) since fitted: refit with POST /v1/predictors"
    newer: Any = SimpleNamespace(id="prd_3", feature="iimm", method="full", target="gain", n=6)
    done = {**DONE, "prd_3": _prediction("prd_3", "iimm", 0.5, 0.75)}
    entry = _per_method([ZS, IIMM, newer], done, RankBy.iimm, lambda m: None, {"prd_3": why})
    full = entry["full"]
    assert full["gain"]["predictor_id"] == "prd_2" and full["stale"] is False
    both = {"prd_3": why, "prd_2": why}
    full = _per_method([ZS, IIMM, newer], done, RankBy.iimm, lambda m: None, both)["full"]
    assert full["gain"]["predictor_id"] == "prd_3" and full["stale"] is True  # only stale ones
    assert full["stale_reason"] == f"gain predictor prd_3 (iimm) is stale: {why}"
