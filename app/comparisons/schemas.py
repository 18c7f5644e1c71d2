"""Schemas of `/v1/comparisons` and `/v1/rankings`."""

from __future__ import annotations

from pydantic import BaseModel, Field

# the choice of gain predictor is shared with the assess job, so its enum lives there
from app.predictors.choice import RankBy as RankBy
from app.predictors.schemas import Interval


class MeasureComparisonRead(BaseModel):
    """One measure against G and against the fine-tuned accuracy over `n` tasks."""

    measure: str
    variant: str | None = Field(
        description=(
            "For a transferability baseline, the variant it was computed with: 'definition' "
            "(the method's paper, computed exactly); null for the other measures."
        )
    )
    relative_to: list[str] | None = Field(
        default=None,
        description=(
            "For 'ncti', which is relative to a set of candidate models: the base models whose "
            "stored raw terms it was normalised across (per dataset, those with all three "
            "terms); null otherwise."
        ),
    )
    n: int
    spearman_gain: float | None
    spearman_gain_pvalue: float | None
    spearman_accuracy: float | None
    spearman_accuracy_pvalue: float | None
    r_squared: float | None = Field(description="R² of the linear fit of G on the measure.")
    slope_pvalue: float | None
    datasets_missing: list[str] = Field(description="Tasks where the measure is not known.")


class SkippedMeasure(BaseModel):
    """A measure that could not be compared, and why."""

    measure: str
    reason: str


class FlaggedTask(BaseModel):
    """A fine-tuned task left out of the comparison, and why (its matrix row's flag)."""

    dataset_id: str = Field(description="The task's (training) dataset id.")
    dataset_name: str | None = Field(description="The dataset's name; null if it is unknown.")
    reason: str


class ComparisonRead(BaseModel):
    """The paper's Tables 1 to 3 on the project's own tasks, best |ρ vs G| first."""

    base_model_id: str
    method: str
    split: str
    n_tasks: int
    datasets: list[str]
    items: list[MeasureComparisonRead]
    skipped: list[SkippedMeasure]
    best_measure: str | None = Field(
        default=None,
        description="The measure with the strongest rank correlation with G (the first item).",
    )
    verdict: str | None = Field(
        default=None,
        description="Which measure predicts G best for this model and method, beside IIMM and "
        "zero-shot accuracy, in one sentence.",
    )
    flagged: list[FlaggedTask] = Field(
        default_factory=list,
        description="Tasks left out because their zero-shot error is too small for a stable G, "
        "each with the matrix row's flag as `reason`.",
    )


class ZeroShotPrediction(BaseModel):
    """What the method's gain predictor on zero-shot accuracy says for the same dataset: the
    baseline a predictor on IIMM (or another measure) has to beat."""

    predictor_id: str
    gain: Interval
    finetuned_accuracy: Interval | None = Field(
        description="acc_zs + G·(1 − acc_zs) clipped to [0, 1], with its interval."
    )
    extrapolated: bool
    stale: bool = Field(
        default=False,
        description="True when this predictor (`predictor_id`) is stale (a dataset it was "
        "fitted on deleted, or evaluations of its matrix stored after its fit); its "
        "`stale_reason` is in `GET /v1/predictors/{id}`.",
    )


class IimmPrediction(ZeroShotPrediction):
    """What the method's gain predictor on IIMM says for the same dataset, beside a ranking
    by another measure."""


class RankingItem(BaseModel):
    """A (base model, method) candidate for the dataset, by predicted fine-tuned accuracy."""

    rank: int
    base_model_id: str
    base_model_name: str
    method: str
    feature: str
    feature_variant: str | None = Field(
        description="The variant of a baseline feature ('definition'); null for the others."
    )
    feature_value: float
    zero_shot_accuracy: float
    finetuned_accuracy: Interval
    gain: Interval
    ood_change: Interval | None = Field(
        description="Predicted out-of-domain accuracy change; negative = forgotten."
    )
    extrapolated: bool
    gain_predictor_id: str
    ranked_by: str = Field(
        description="Why this candidate is ranked by `feature`'s predictor (`gain_predictor_id`): "
        "the `by` asked for and, for `best`, what the comparison of this base model and method "
        "says."
    )
    ood_change_predictor_id: str | None
    ood_change_by: str | None = Field(
        default=None,
        description="Which predictor `ood_change` comes from (`ood_change_predictor_id`, its "
        "measure and task count): IIMM's forgetting predictor when there is one, whatever `by` "
        "says (the comparison ranks measures against gain, not forgetting); null without one.",
    )
    gain_from_zero_shot_accuracy: ZeroShotPrediction | None = Field(
        default=None,
        description="Beside the ranking's own prediction: the newest gain predictor of this "
        "base model and method on zero-shot accuracy, at this dataset's zero-shot accuracy; "
        "null without one, or when it is the ranking's own predictor (`feature` is "
        "zero_shot_accuracy).",
    )
    gain_from_iimm: IimmPrediction | None = Field(
        default=None,
        description="Beside the ranking's own prediction: the newest gain predictor of this "
        "base model and method on IIMM, at this dataset's IIMM; null without one, or when it "
        "is the ranking's own predictor (`feature` is iimm).",
    )
    stale: bool = Field(
        default=False,
        description="True when the predictor of `gain` or of `ood_change` is stale (a dataset it "
        "was fitted on deleted, or evaluations of its matrix stored after its fit): the ranking "
        "rests on out-of-date data until it is refitted.",
    )
    stale_reason: str | None = Field(
        default=None,
        description="Which of those predictors is stale, why, and to refit (its `stale_reason` "
        "in `GET /v1/predictors/{id}`); null when neither is.",
    )


class Unranked(BaseModel):
    """A base model (or one of its methods) that could not be ranked, and what to do."""

    base_model_id: str
    base_model_name: str
    method: str | None
    reason: str


class RankingRead(BaseModel):
    """Candidates best first; predicted forgetting beside the accuracy, not in the order."""

    dataset_id: str
    dataset_name: str = Field(description="The dataset's name.")
    level: float
    by: RankBy = Field(
        description="The predictor each candidate is ranked by: `iimm` or `zero_shot` (its gain "
        "predictor on IIMM or on zero-shot accuracy), or `best`: per base model and method, the "
        "gain predictor whose measure the comparison (`/v1/comparisons`) ranks highest, IIMM's "
        "when there is no comparison (fewer than 3 usable fine-tuned tasks)."
    )
    items: list[RankingItem]
    unranked: list[Unranked]
