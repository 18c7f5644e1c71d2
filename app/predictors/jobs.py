"""The `assess` job type: embed (cached), score and predict for a user's new task."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.jobtype import JobType, NamedResult, check_refs
from app.predictors.choice import RankBy


class AssessParams(BaseModel):
    """Embed a dataset's test split (reusing stored embeddings), score it, and predict with
    every predictor of the project fitted for the model: one document as the job's result."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["assess"] = "assess"
    model_id: str = Field(max_length=40, examples=["mdl_0193c0ffee00a1b2c3d4e5f6"])
    dataset_id: str = Field(max_length=40, examples=["dst_0193c0ffee00a1b2c3d4e5f6"])
    prompts: list[str] | None = Field(
        default=None, max_length=64, description="Prompt templates with `{c}`; default per dataset."
    )
    bootstrap: int = Field(
        default=200, ge=0, le=2000, description="Bootstrap resamples of the IIMM interval."
    )
    level: float = Field(default=0.95, gt=0.0, lt=1.0, description="Prediction interval level.")
    by: RankBy = Field(
        default=RankBy.best,
        description="The gain predictor each method's prediction leads with, as in "
        "`GET /v1/rankings`: `iimm`, `zero_shot` (zero-shot accuracy), or `best`: the measure the "
        "comparison of the base model and method ranks highest among its gain predictors (IIMM "
        "without a comparison). `predicted_by` says which and why; the others stand beside it.",
    )


def _check_assess(session: Session, project_id: str, params: BaseModel) -> None:
    assert isinstance(params, AssessParams)
    check_refs(session, project_id, params.model_id, params.dataset_id, "test", params.prompts)


def _links(job_id: str, params: dict[str, Any], _: dict[str, Any] | None) -> dict[str, str]:
    model, dataset = params["model_id"], params["dataset_id"]
    return {
        "model": f"/v1/models/{model}",
        "dataset": f"/v1/datasets/{dataset}",
        "scores": f"/v1/scores?model_id={model}&dataset_id={dataset}&split=test",
        "predictors": f"/v1/predictors?base_model_id={model}",
        "rankings": f"/v1/rankings?dataset_id={dataset}",
    }


class AssessMethod(BaseModel):
    """What one fine-tuning method is predicted to bring. Results stored before `by` existed
    led with IIMM's predictor and lack `feature`, `predicted_by`, `gain_from_iimm` and `stale`."""

    model_config = ConfigDict(extra="allow")

    feature: str | None = Field(
        default=None, description="The measure of the gain predictor `gain` comes from."
    )
    predicted_by: str | None = Field(
        default=None,
        description="Why `gain` comes from that predictor: the `by` asked for and, for `best`, "
        "what the comparison of this base model and method says (as `ranked_by` in "
        "`GET /v1/rankings`); without one, what is missing.",
    )
    gain: dict[str, Any] | None = Field(
        default=None, description="The predicted gain over zero-shot error with its interval."
    )
    finetuned_accuracy: dict[str, Any] | None = Field(
        default=None, description="The fine-tuned accuracy `gain` implies, with its interval."
    )
    ood_change: dict[str, Any] | None = Field(
        default=None,
        description="The predicted out-of-domain accuracy change (IIMM's predictor first).",
    )
    ood_change_by: str | None = Field(
        default=None,
        description="Which predictor `ood_change` comes from (its id, measure and task count): "
        "IIMM's forgetting predictor when there is one, whatever `by` says (the comparison "
        "ranks measures against gain, not forgetting); null without one.",
    )
    gain_from_zero_shot_accuracy: dict[str, Any] | None = Field(
        default=None,
        description="Beside `gain`: the newest gain predictor on zero-shot accuracy's prediction "
        "(with its `finetuned_accuracy`, its `predictor_id` and `stale`: whether that predictor "
        "was stale when assessed); null without one or when it is `gain`'s own.",
    )
    gain_from_iimm: dict[str, Any] | None = Field(
        default=None,
        description="Beside `gain`: the newest gain predictor on IIMM's prediction (with its "
        "`finetuned_accuracy`, its `predictor_id` and `stale`: whether that predictor was stale "
        "when assessed); null without one or when it is `gain`'s own.",
    )
    stale: bool = Field(
        default=False,
        description="True when the predictor of `gain` or `ood_change` was stale when assessed "
        "(a dataset it was fitted on deleted, or newer evaluations of its matrix).",
    )
    stale_reason: str | None = Field(
        default=None, description="Which of them is stale, why, and to refit; null when neither."
    )


class AssessResult(NamedResult):
    """An `assess` job's document: zero-shot accuracy, IIMM with its interval, every measure,
    and per fine-tuning method the predicted gain, fine-tuned accuracy and `ood_change`."""

    type: Literal["assess"] = "assess"
    model_id: str
    dataset_id: str
    split: str
    n: int
    zero_shot_accuracy: float | None
    iimm: dict[str, float | None] = Field(description="`value`, `ci_low`, `ci_high`.")
    measures: dict[str, float | None]
    methods: dict[str, AssessMethod] = Field(
        description="Per method: the predicted `gain`, `finetuned_accuracy` and `ood_change` "
        "(negative = forgotten), `predicted_by`, and the gains of the other predictors beside."
    )
    predictions: list[dict[str, Any]]
    unavailable: list[dict[str, str]] = Field(
        default_factory=list, description="Predictors that could not predict: id, feature, reason."
    )
    embedding_id: str | None = None
    embeddings_reused: bool = False


ASSESS = JobType("assess", AssessParams, "gpu", _check_assess, _links, result=AssessResult)
