"""Predictor schemas: fit requests, fitted predictors, and predictions with intervals."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.finetuning.params import METHOD_ENUM
from app.measures import ALL_MEASURES

Target = Literal["gain", "ood_change"]
ID = Field(max_length=40, examples=["mdl_0193c0ffee00a1b2c3d4e5f6"])


class PredictorCreate(BaseModel):
    """Fit a target on a zero-shot feature over the fine-tuned tasks of (base model, method)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"base_model_id": "mdl_0193...", "method": "full", "feature": "iimm"}]
        },
    )

    base_model_id: str = ID
    method: str = Field(
        min_length=1, max_length=40, examples=["full"], json_schema_extra=METHOD_ENUM
    )
    feature: str = Field(
        default="iimm",
        min_length=1,
        max_length=60,
        description="A stored measure (see `/v1/scores`) or `zero_shot_accuracy`.",
        json_schema_extra={"enum": [*ALL_MEASURES, "zero_shot_accuracy"]},
    )
    target: Target = Field(
        default="gain", description="`gain` = G over zero-shot error, or `ood_change`."
    )
    dataset_ids: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Training datasets; default: every dataset with a zero-shot score of the "
        "feature and a fine-tuned row in the matrix.",
    )
    piecewise: Literal["auto", "never"] = Field(
        default="auto",
        description="`auto`: a linear-then-flat fit when it beats the line in leave-one-out "
        "error (from 5 tasks); `never`: always the line.",
    )


class Point(BaseModel):
    """One fine-tuned task of the fit."""

    dataset_id: str
    x: float
    y: float


class Skipped(BaseModel):
    """A fine-tuned task a fit cannot use, and why."""

    dataset_id: str
    reason: str


class LineStats(BaseModel):
    """The plain least-squares line (reported beside a piecewise fit)."""

    slope: float | None
    intercept: float | None
    slope_se: float | None
    intercept_se: float | None
    r_squared: float | None
    slope_pvalue: float | None
    loo_rmse: float | None
    residual_sd: float | None


class FittedRange(BaseModel):
    """The feature's range over the training tasks; predictions outside it extrapolate."""

    min: float
    max: float


class PredictorRead(BaseModel):
    """A fitted predictor with the statistics a user judges it by.

    For `model_form = piecewise` (y = intercept + slope·min(x, breakpoint)) the slope's
    p-value, Pearson r and Spearman ρ describe the association and come from the plain line,
    whose full statistics are in `linear`.
    """

    id: str
    base_model_id: str
    method: str
    feature: str
    target: Target
    split: str
    piecewise: Literal["auto", "never"]
    model_form: Literal["linear", "piecewise"]
    slope: float | None
    intercept: float | None
    slope_se: float | None
    intercept_se: float | None
    r_squared: float | None
    slope_pvalue: float | None
    pearson_r: float | None
    spearman_rho: float | None
    spearman_pvalue: float | None
    loo_rmse: float | None
    residual_sd: float | None
    n: int
    fitted_range: FittedRange
    breakpoint: float | None = None
    plateau: float | None = None
    linear: LineStats | None = None
    datasets: list[str]
    points: list[Point]
    skipped: list[Skipped] = Field(
        description="The fine-tuned tasks of its matrix a fit cannot use now, and why (e.g. no "
        "score of the feature: run a score job)"
    )
    stale: bool = Field(
        default=False,
        description="True when a refit with its own parameters (its `datasets`, feature, "
        "target, method, piecewise) would now see different points: a task's G, "
        "accuracy or feature value changed, or a task it used is gone or no longer usable "
        "(`changed_points`); `stale_reason` says which and how to refit. New fine-tuned tasks "
        "outside its datasets do not make it stale",
    )
    missing_dataset_ids: list[str] = Field(
        default_factory=list, description="The deleted datasets among `datasets`"
    )
    changed_points: int = Field(
        default=0,
        description="How many of its points a refit on its datasets would see differently "
        "(changed values, or tasks deleted or no longer usable)",
    )
    stale_reason: str | None = Field(
        default=None,
        description="Why it is stale (the changed points) and the exact refit: the `iimm "
        "predictors fit` command and the POST /v1/predictors body with its stored options, "
        "or the predictor such a refit already gave; null when it is not stale",
    )
    refitted_as: str | None = Field(
        default=None,
        description="The predictor a refit as `stale_reason` says already gave (the same "
        "options on the points as they are now): this one is superseded by it; null when it "
        "is not stale or has not been refitted",
    )
    created_at: datetime
    links: dict[str, str] = Field(default_factory=dict)


class PredictorList(BaseModel):
    """A page of predictors, newest first."""

    items: list[PredictorRead]
    next_cursor: str | None


class PredictionCreate(BaseModel):
    """Predict for a registered dataset (its stored scores) or for raw values."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"dataset_id": "dst_0193..."},
                {"feature_value": 0.42, "zero_shot_accuracy": 0.55},
            ]
        },
    )

    dataset_id: str | None = Field(default=None, max_length=40)
    feature_value: float | None = Field(default=None, allow_inf_nan=False)
    zero_shot_accuracy: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    level: float = Field(default=0.95, gt=0.0, lt=1.0, description="Prediction interval level.")

    @model_validator(mode="after")
    def _one_way(self) -> PredictionCreate:
        if (self.dataset_id is None) == (self.feature_value is None):
            raise ValueError("give either `dataset_id` or `feature_value` (with optional "
                             "`zero_shot_accuracy`)")  # fmt: skip
        if self.dataset_id is not None and self.zero_shot_accuracy is not None:
            raise ValueError("`zero_shot_accuracy` goes with `feature_value`, not `dataset_id`")
        return self


class Interval(BaseModel):
    """A predicted value with its prediction interval at `level`."""

    value: float | None
    lower: float | None
    upper: float | None
    level: float


class PredictionRead(BaseModel):
    """The predicted target with its interval, and the fine-tuned accuracy it implies."""

    predictor_id: str
    method: str
    feature: str
    target: Target
    dataset_id: str | None
    feature_value: float
    zero_shot_accuracy: float | None
    prediction: Interval
    se: float | None
    df: int
    extrapolated: bool
    finetuned_accuracy: Interval | None = Field(
        default=None,
        description="acc_zs + G·(1 − acc_zs) clipped to [0, 1] (target `gain` with a known "
        "zero-shot accuracy).",
    )
