"""The choice of gain predictor (`app.predictors.choice.pick_gain_predictor`) on hand-made
predictors: among several on the same measure a fresh one beats a newer stale one, the newest
wins among equals, and where all are stale the newest stale one is used."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app.predictors.choice import (
    NoComparison,
    RankBy,
    headline,
    newest,
    ood_change_by,
    pick_gain_predictor,
)


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


def test_ood_change_by_names_the_forgetting_predictor_and_that_by_does_not_choose_it() -> None:
    on_iimm, on_zs = _p("prd_5", "iimm", 4, "ood_change"), _p("prd_6", "zero_shot_accuracy", 6,
                                                              "ood_change")  # fmt: skip
    assert headline([on_iimm, on_zs])[("full", "ood_change")] is on_iimm  # whatever `by`
    assert ood_change_by(on_iimm) == (
        "ood_change from prd_5 (iimm, fitted on 4 tasks): IIMM's forgetting predictor, whatever "
        "`by` says (the comparison ranks measures against gain, not forgetting)"
    )
    assert ood_change_by(on_zs, {"prd_6"}) == (
        "ood_change from prd_6 (zero_shot_accuracy, fitted on 6 tasks): no forgetting predictor "
        "on iimm, so the one on zero_shot_accuracy, whatever `by` says (the comparison ranks "
        "measures against gain, not forgetting); it is stale: see stale_reason"
    )
    assert ood_change_by(None) is None


def _why(
    by: RankBy, comparison: Any, gains: list[Any] = GAINS, stale: frozenset[str] = frozenset()
) -> tuple[Any, str]:
    return pick_gain_predictor(by, gains, "full", lambda m: comparison, stale)


def test_sentence_best_with_a_comparison_names_its_tasks_and_the_predictors() -> None:
    """The demo's case: a comparison over 8 tasks, the predictor used fitted on 6."""
    chosen, why = _why(RankBy.best, ZS_FIRST)
    assert chosen is NEW_ZS
    assert why == (
        "by=best: the comparison over 8 tasks ranks zero_shot_accuracy first (ρ vs G -0.90); "
        "the gain predictor used was fitted on 6 tasks"
    )


@pytest.mark.parametrize(
    ("comparison", "shortfall"),
    [
        # production's case: 3 usable tasks, the comparison ranks nothing (best_measure null)
        (NoComparison(tasks=3, scored=2), "2 of the 3 tasks needed have scores"),
        (NoComparison(tasks=2), "2 of the 3 usable fine-tuned tasks needed"),
        (NoComparison(tasks=4, scored=4),
         "no measure could be compared over its 4 tasks: see GET /v1/comparisons"),
        (SimpleNamespace(n_tasks=3, best_measure=None, items=[]),
         "no measure could be compared over its 3 tasks: see GET /v1/comparisons"),
        (None, "it needs 3 usable fine-tuned tasks"),
    ],
)  # fmt: skip
def test_sentence_best_without_a_comparison_says_what_is_missing(
    comparison: Any, shortfall: str
) -> None:
    chosen, why = _why(RankBy.best, comparison)
    assert chosen is NEW_IIMM
    assert why == (
        f"by=best: no comparison yet ({shortfall}), so IIMM's gain predictor, fitted on 6 tasks"
    )
    assert "not in the comparison" not in why
    chosen, why = _why(RankBy.best, comparison, [OLD_ZS])
    assert why == (
        f"by=best: no comparison yet ({shortfall}), so the gain predictor on zero_shot_accuracy "
        "(none on IIMM), fitted on 4 tasks"
    )


def test_sentence_best_falls_back_when_the_best_measure_has_no_predictor() -> None:
    ncti_first: Any = SimpleNamespace(
        n_tasks=8, best_measure="ncti",
        items=[SimpleNamespace(measure="ncti", spearman_gain=0.95),
               SimpleNamespace(measure="zero_shot_accuracy", spearman_gain=-0.9),
               SimpleNamespace(measure="iimm", spearman_gain=None)],
    )  # fmt: skip
    chosen, why = _why(RankBy.best, ncti_first)
    assert chosen is NEW_ZS
    assert why == (
        "by=best: the comparison over 8 tasks ranks ncti first (ρ vs G +0.95) but it has no "
        "gain predictor usable here, so zero_shot_accuracy (ranked 2 of 3, ρ vs G -0.90); "
        "the gain predictor used was fitted on 6 tasks"
    )
    chosen, why = _why(RankBy.best, ncti_first, [OLD_IIMM])
    assert (
        "so iimm (ranked 3 of 3, ρ vs G undefined); the gain predictor used was fitted on 4" in why
    )
    chosen, why = _why(RankBy.best, ZS_FIRST, [_p("prd_9", "logme", 7)])
    assert why == (
        "by=best: the comparison over 8 tasks ranks zero_shot_accuracy first (ρ vs G -0.90) but "
        "it has no gain predictor usable here, so logme (not in the comparison); the gain "
        "predictor used was fitted on 7 tasks"
    )


def test_sentence_explicit_by_with_and_without_its_predictor() -> None:
    chosen, why = _why(RankBy.iimm, ZS_FIRST)
    assert chosen is NEW_IIMM and why == "by=iimm: the gain predictor on iimm, fitted on 6 tasks"
    chosen, why = _why(RankBy.zero_shot, None, [OLD_IIMM])
    assert chosen is None
    assert why == (
        "by=zero_shot: no gain predictor on zero_shot_accuracy whose feature is known for this "
        "dataset: fit one with POST /v1/predictors (feature 'zero_shot_accuracy') or use by=best"
    )
    assert _why(RankBy.best, None, []) == (
        None,
        "by=best: no gain predictor whose feature is known for this dataset",
    )


def test_sentence_stale_names_the_fresh_choice_or_the_stale_one() -> None:
    _, why = _why(RankBy.iimm, None, stale=frozenset({NEW_IIMM.id}))
    assert why == (
        "by=iimm: the gain predictor on iimm, fitted on 4 tasks; 1 newer one is stale, so not used"
    )
    _, why = _why(RankBy.best, ZS_FIRST, stale=frozenset({OLD_ZS.id, NEW_ZS.id}))
    assert why == (
        "by=best: the comparison over 8 tasks ranks zero_shot_accuracy first (ρ vs G -0.90); "
        "the gain predictor used was fitted on 6 tasks; it is stale, as is every other on "
        "zero_shot_accuracy: see stale_reason"
    )
    _, why = _why(RankBy.best, None, [OLD_IIMM], frozenset({OLD_IIMM.id}))
    assert why.endswith(
        "so IIMM's gain predictor, fitted on 4 tasks; it is stale, there is no other on iimm: "
        "see stale_reason"
    )
