"""Base model schemas."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelCreate(BaseModel):
    """Register a model by preset (`clip`, `siglip`, `coca`, `eva02`, `reference`) or weights.

    `reference` is the small dual encoder trained in this repository and shipped with the
    package: it works offline (docs/reference-model.md).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "clip-b32", "preset": "clip"},
                {"name": "reference", "preset": "reference"},
                {"name": "vit-b32-laion", "arch": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"},
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, pattern=r"^[\w .@:/-]+$")
    preset: str | None = Field(default=None, max_length=50)
    arch: str | None = Field(default=None, max_length=500)
    pretrained: str | None = Field(
        default=None, max_length=500, description="Tag, checkpoint path, or `random`."
    )

    @model_validator(mode="after")
    def _one_way(self) -> ModelCreate:
        if (self.preset is None) == (self.arch is None):
            raise ValueError("give either `preset` or `arch` (with `pretrained`)")
        return self

    @property
    def spec(self) -> str:
        """The model spec string workers load (`ARCH@WEIGHTS` or a preset)."""
        if self.preset:
            return self.preset
        if self.arch and self.arch.startswith(("hf-hub:", "local-dir:")):
            return self.arch
        return f"{self.arch}@{self.pretrained or 'random'}"


class ModelRead(BaseModel):
    """A registered base model."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    arch: str
    pretrained: str | None
    preset: str | None
    spec: str
    created_at: datetime


class ModelList(BaseModel):
    """A page of models, newest first."""

    items: list[ModelRead]
    next_cursor: str | None
