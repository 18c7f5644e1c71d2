"""The choice of gain predictor (`app.predictors.choice.pick_gain_predictor`) on hand-made
predictors: among several on the same measure a fresh one beats a newer stale one, the newest
wins among equals, and where all are stale the newest stale one is used."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app.predictors.choice import RankBy, headline, newest, pick_gain_predictor


def _p(pid: str, feature: str, n: int = 5, target: str = "gain") -> Any:
    return SimpleNamespace(id=pid, feature=feature, method="full", target=target, n=n)


OLD_IIMM, NEW_IIMM = _p("prd_1", "iimm", 4), _p("prd_3", "iimm", 6)
OLD_ZS, NEW_ZS = _p("prd_2", "zero_shot_accuracy", 4), _p("prd_4", "zero_shot_accuracy", 6)
GAINS = [OLD_IIMM, OLD_ZS, NEW_IIMM, NEW_ZS]
ZS_FIRST: Any = SimpleNamespace(
    n_tasks=8, best_measure="zero_shot_accuracy",
    items=[SimpleNamespace(measure="zero_shot_accuracy", spearman_gain=-0.9),
           SimpleNamespace(measure="iimm", spearman_gain=0.1)],
)  # fmt: skip


def _pick(by: RankBy, stale: set[str], comparison: Any = ZS_FIRST) -> Any:
    return pick_gain_predictor(by, GAINS, "full", lambda m: comparison, stale)[0]


@pytest.mark.parametrize(
    ("by", "comparison", "newer", "older"),
    [
        (RankBy.iimm, ZS_FIRST, NEW_IIMM, OLD_IIMM),
        (RankBy.zero_shot, ZS_FIRST, NEW_ZS, OLD_ZS),
        (RankBy.best, ZS_FIRST, NEW_ZS, OLD_ZS),  # the measure the comparison ranks first
        (RankBy.best, None, NEW_IIMM, OLD_IIMM),  # IIMM's without a comparison
    ],
)
def test_fresh_before_newer_stale_then_newest(
    by: RankBy, comparison: Any, newer: Any, older: Any
) -> None:
    assert _pick(by, set(), comparison) is newer  # all fresh: the newest
    assert _pick(by, {newer.id}, comparison) is older  # the newest is stale: the fresh one
    assert _pick(by, {older.id}, comparison) is newer
    assert _pick(by, {newer.id, older.id}, comparison) is newer  # all stale: the newest


def test_freshness_does_not_override_the_measure() -> None:
    """A stale predictor on the measure the comparison ranks first still beats a fresh one on
    another measure (freshness orders predictors on the same measure only)."""
    assert _pick(RankBy.best, {OLD_ZS.id, NEW_ZS.id}) is NEW_ZS


def test_headline_and_beside_prefer_fresh_too() -> None:
    ood_old, ood_new = (
        _p("prd_5", "iimm", target="ood_change"),
        _p("prd_6", "iimm", target="ood_change"),
    )
    chosen = headline([ood_old, ood_new], {ood_new.id})
    assert chosen[("full", "ood_change")] is ood_old
    assert headline([ood_old, ood_new])[("full", "ood_change")] is ood_new
    assert newest([OLD_ZS, NEW_ZS], {NEW_ZS.id})[("full", "gain")] is OLD_ZS
