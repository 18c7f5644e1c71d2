"""The comparison's one-line verdict (`app.comparisons.service.verdict`) on hand-made rows."""

from __future__ import annotations


def test_comparison_verdict_names_the_best_measure_beside_iimm_and_zero_shot() -> None:
    from app.comparisons.schemas import MeasureComparisonRead
    from app.comparisons.service import verdict

    def c(measure: str, rho: float | None, p: float | None) -> MeasureComparisonRead:
        return MeasureComparisonRead(
            measure=measure, variant=None, n=6, spearman_gain=rho, spearman_gain_pvalue=p,
            spearman_accuracy=None, spearman_accuracy_pvalue=None, r_squared=None,
            slope_pvalue=None, datasets_missing=[],
        )  # fmt: skip

    items = [c("zero_shot_accuracy", -0.94, 0.005), c("logme", 0.5, 0.3), c("iimm", 0.2, None)]
    assert verdict(items, 6) == (
        "over 6 tasks zero_shot_accuracy predicts G best (zero_shot_accuracy ρ -0.94, p 0.005)"
        " (beside it: iimm ρ +0.20)"
    )
    assert (
        verdict([c("iimm", None, None)], 3) == "over 3 tasks iimm predicts G best (iimm undefined)"
    )
    assert verdict([], 3) is None
