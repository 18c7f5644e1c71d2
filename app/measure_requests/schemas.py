"""Schemas of `POST /v1/measures`."""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel, ConfigDict, Field

from app.measures.registry import Variant

#: How the transferability baselines are computed (``app.measures.registry.VARIANTS``):
#: each method's paper (default), the IIMM paper's code, the authors' released code, or
#: (LogME only) its authors' ICML code. A method without the variant is null with the reason.
VARIANT_NAMES: tuple[str, ...] = get_args(Variant)


class MeasuresRequest(BaseModel):
    """Small inputs as JSON arrays: image embeddings (n×d), class text embeddings (k×d)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "images": [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]],
                    "texts": [[1.0, 0.1], [0.1, 1.0]],
                    "labels": [0, 0, 1, 1],
                    "measures": ["iimm", "inter_modal", "intra_images"],
                }
            ]
        },
    )

    images: list[list[float]] = Field(min_length=2)
    texts: list[list[float]] = Field(min_length=2)
    labels: list[int] = Field(min_length=2)
    measures: list[str] | None = Field(default=None, max_length=64)
    variant: Variant = Field(
        default="definition", description="How the transferability baselines are computed."
    )


class MeasuresResult(BaseModel):
    """Every requested measure (null when undefined), with the input's shape."""

    measures: dict[str, float | None]
    #: Why each null measure is undefined on these data (e.g. "gbc needs at least 2 samples
    #: per class"); absent for defined measures.
    reasons: dict[str, str] = {}
    #: The variant the baselines were computed with.
    variant: Variant = "definition"
    n: int
    k: int
    dim: int
