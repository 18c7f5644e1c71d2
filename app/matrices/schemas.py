"""Matrix schemas: the JSON form of `app.matrices.service.Matrix`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MatrixColumn(BaseModel):
    """An evaluation dataset (a column of the matrix)."""

    id: str
    name: str


class MatrixRowRead(BaseModel):
    """A fine-tuned model's test accuracies, in-domain gain G and out-of-domain change."""

    train_dataset_id: str
    train_dataset_name: str | None
    finetuned_model_id: str
    accuracies: dict[str, float]
    gain: float | None
    ood_change: float | None
    flag: str | None = Field(
        default=None,
        description="Why this row's G is unreliable, when it is (its zero-shot error is below "
        "IIMM_MIN_ZERO_SHOT_ERROR); gain predictors leave flagged rows out.",
    )


class MatrixRead(BaseModel):
    """Rows = training dataset (plus `zero_shot`), columns = evaluation dataset, cells =
    test top-1 accuracy; `gain` = (acc_ft − acc_zs)/(1 − acc_zs) on the training dataset,
    `ood_change` = mean over the other columns of acc_ft − acc_zs."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "base_model_id": "mdl_0193...",
                    "method": "full",
                    "datasets": [
                        {"id": "dst_a", "name": "shapes"},
                        {"id": "dst_b", "name": "colours"},
                    ],
                    "zero_shot": {"dst_a": 0.2, "dst_b": 0.3},
                    "rows": [
                        {
                            "train_dataset_id": "dst_a",
                            "train_dataset_name": "shapes",
                            "finetuned_model_id": "ftm_0193...",
                            "accuracies": {"dst_a": 0.9, "dst_b": 0.25},
                            "gain": 0.875,
                            "ood_change": -0.05,
                        }
                    ],
                }
            ]
        }
    )

    base_model_id: str
    method: str
    datasets: list[MatrixColumn]
    zero_shot: dict[str, float]
    rows: list[MatrixRowRead]
