"""Score schemas."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ScoreRead(BaseModel):
    """One measure with the zero-shot accuracy, sample size and (when computed) its interval."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "model_id": "mdl_0193...",
                    "dataset_id": "dst_0193...",
                    "split": "test",
                    "measure": "iimm",
                    "value": 0.4132,
                    "ci_low": 0.4101,
                    "ci_high": 0.4160,
                    "n": 2000,
                    "zero_shot_accuracy": 0.61,
                    "prompts": "clip_benchmark:cifar10",
                    "prompts_hash": "5d0c7e...",
                }
            ]
        },
    )

    id: str
    model_id: str
    dataset_id: str
    split: str
    measure: str
    value: float | None
    #: Why `value` is null: the measure is undefined on these data (e.g. one class present).
    reason: str | None = None
    #: What the value rests on that a reader should know: prompts truncated by the tokenizer,
    #: classes whose prompts collide, classes with fewer than 2 images in the split.
    warnings: list[str] = []
    ci_low: float | None
    ci_high: float | None
    n: int
    zero_shot_accuracy: float | None
    job_id: str | None
    prompts: list[str] | str | None = Field(
        default=None,
        description="The prompts of the embeddings the score rests on, as the score job gave "
        "them (templates or an ensemble's name; null: the dataset's default template).",
    )
    prompts_hash: str = Field(
        default="default",
        description="Content key of `prompts` (`default` for none), as on its embeddings.",
    )
    created_at: datetime


class ScoreList(BaseModel):
    """A page of scores."""

    items: list[ScoreRead]
    next_cursor: str | None
