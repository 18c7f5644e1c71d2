"""Request shapes of the `finetune` and `evaluate` jobs (torch-free: the API validates them).

The names and bounds mirror `workers.ml.finetune.FinetuneConfig`, which the worker builds
from `hyperparameters`; the API cannot import that package (it imports torch).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

# The methods of workers.ml.finetune.METHODS and the grid axes each one adds.
METHOD_GRID_AXES: dict[str, tuple[str, ...]] = {
    "full": (),
    "bitfit": (),
    "attention": (),
    "lora": ("lora_rank",),
    "adapter": ("adapter_reduction",),
    "probe": (),
}
# The same names as a type, for query parameters (FastAPI answers 422 naming them).
Method = Literal["full", "bitfit", "attention", "lora", "adapter", "probe"]
assert set(get_args(Method)) == set(METHOD_GRID_AXES)
# Body fields keep `str` (their 422 says which methods exist) and declare the enum.
METHOD_ENUM: dict[str, Any] = {"enum": list(METHOD_GRID_AXES)}
MAX_GRID_POINTS = 64
ID = Field(max_length=40, examples=["mdl_0193c0ffee00a1b2c3d4e5f6"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GridParams(_Strict):
    """Values to search (null keeps the single value); best validation accuracy wins."""

    lr: list[float] | None = Field(default=None, max_length=16)
    weight_decay: list[float] | None = Field(default=None, max_length=16)
    lora_rank: list[int] | None = Field(default=None, max_length=16)
    adapter_reduction: list[int] | None = Field(default=None, max_length=16)


class Hyperparameters(_Strict):
    """Training settings (the paper's defaults: SGD momentum 0.9, batch 128, 30 epochs)."""

    lr: float = Field(default=1e-3, gt=0, le=10)
    weight_decay: float = Field(default=1e-4, ge=0, le=1)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    epochs: int = Field(default=30, ge=1, le=1000)
    max_steps: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Budget in optimiser steps instead of epochs (`epochs` is then ignored), "
        "so tasks of different sizes get equal updates; the last epoch may be partial.",
    )
    batch_size: int = Field(default=128, ge=1, le=4096)
    schedule: Literal["constant", "cosine"] = "constant"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    blocks: int | None = Field(default=None, ge=1, le=1000)
    lora_rank: int = Field(default=8, ge=1, le=1024)
    lora_alpha: float = Field(default=16.0, gt=0, le=1e4)
    lora_mlp: bool = False
    adapter_reduction: int = Field(default=4, ge=1, le=1024)
    adapter_ratio: float = Field(default=0.2, ge=0, le=1)
    adapter_init: Literal["zero", "reference"] = "zero"
    grid: GridParams | None = None
    max_grid_points: int = Field(default=MAX_GRID_POINTS, ge=1, le=MAX_GRID_POINTS)


class FinetuneParams(_Strict):
    """Fine-tune base model `model_id` on the train split of `dataset_id` with `method`,
    then evaluate the result (test splits) on `evaluate_on` (default: every dataset)."""

    type: Literal["finetune"] = "finetune"
    model_id: str = ID
    dataset_id: str = Field(max_length=40, examples=["dst_0193c0ffee00a1b2c3d4e5f6"])
    method: str = Field(
        default="full",
        max_length=40,
        description=f"One of {sorted(METHOD_GRID_AXES)}.",
        examples=["full"],
        json_schema_extra=METHOD_ENUM,
    )
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    evaluate_on: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Dataset ids to evaluate on afterwards; default every dataset of the "
        "project, [] for none.",
    )


class FinetunePointParams(_Strict):
    """One point of a `finetune` job's grid, run as a child job: train `config` (a
    `workers.ml.finetune.FinetuneConfig` as a dict, grid expanded) with checkpoints under
    `checkpoint_key`. Created by the parent job only."""

    type: Literal["finetune_point"] = "finetune_point"
    model_id: str = ID
    dataset_id: str = Field(max_length=40)
    index: int = Field(ge=0, le=MAX_GRID_POINTS)
    config: dict[str, object]
    checkpoint_key: str = Field(max_length=200)


class EvaluateParams(_Strict):
    """Evaluate a base model (zero-shot) or a fine-tuned model on datasets' test splits."""

    type: Literal["evaluate"] = "evaluate"
    model_id: str = Field(
        max_length=40,
        description="A base model id (zero-shot) or a fine-tuned model id.",
        examples=["ftm_0193c0ffee00a1b2c3d4e5f6"],
    )
    dataset_ids: list[str] | None = Field(
        default=None, max_length=1000, description="Default: every dataset of the project."
    )
    split: str = Field(default="test", max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    keep_existing: bool = Field(
        default=False,
        description="Write only the evaluations not stored yet for the same (model, dataset, "
        "split), as a fine-tune's zero-shot evaluation does; default: replace them.",
    )


def grid_size(method: str, hp: Hyperparameters) -> tuple[int, str]:
    """Points of the grid (as `workers.ml.finetune.grid.grid_points` counts them) and a
    description of its shape; axes that do not apply to the method are ignored."""
    if hp.grid is None:
        return 1, "no grid"
    axes = ["lr", "weight_decay", *METHOD_GRID_AXES.get(method, ())]
    counts = [len(getattr(hp.grid, a) or [None]) for a in axes]
    size = 1
    for n in counts:
        size *= n
    return size, " × ".join(f"{n} {a}" for a, n in zip(axes, counts, strict=True))
