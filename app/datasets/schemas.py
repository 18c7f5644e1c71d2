"""Dataset schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.errors import Problem

NAME_PATTERN = r"^[\w .-]+$"
NAME_RULE = "1-200 letters, digits, spaces, `_`, `.` or `-`"


class DatasetRef(BaseModel):
    """A dataset the workers read where it lives (`file://` under an allowed root, ...)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "shapes", "uri": "file:///data/shapes", "format": "folder"},
                {"name": "cifar100", "uri": "torchvision://CIFAR100?root=/data/cifar"},
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN, description=NAME_RULE)
    uri: str = Field(min_length=1, max_length=2000)
    format: (
        Literal[
            "folder",
            "archive",
            "csv",
            "parquet",
            "torchvision",
            "webdataset",
            "huggingface",
            "fmow",
        ]
        | None
    ) = None
    class_names: list[str] | None = Field(default=None, max_length=100_000)


class SkippedFiles(BaseModel):
    """Files of an upload that are not used, for one reason (see the README's rule)."""

    reason: Literal[
        "macos_metadata", "hidden", "not_image", "outside_class_folders", "not_in_manifest"
    ]
    description: str
    count: int
    examples: list[str]


class DatasetWarning(BaseModel):
    """Something about the data a user should know (``small_test_split``,
    ``exif_orientation_not_applied``, ...), with the classes or files it concerns."""

    code: str
    detail: str
    items: list[str] = []


#: Keys of `Dataset.info` that are the service's own notes, never shown: `format_given`
#: (whether a reference named its format, for its ingest job).
INTERNAL_INFO = frozenset({"format_given"})


class DatasetRead(BaseModel):
    """A registered dataset: class names, split sizes and a content fingerprint.

    Uploads and references start `validating` while their `ingest` job (`job_id`) extracts,
    checks and decodes them; then `ready`, or `failed` with `error` saying why."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "dst_0193c0ffee00a1b2c3d4e5f6",
                    "name": "shapes",
                    "status": "ready",
                    "format": "archive",
                    "class_names": ["circle", "square"],
                    "splits": {"train": 60, "test": 20},
                    "fingerprint": "9f2c...",
                }
            ]
        },
    )

    id: str
    name: str
    status: Literal["validating", "ready", "registered", "failed"] = Field(
        description="`validating` while the ingest job runs, then `ready` or `failed`"
        " (`registered`: a reference registered before ingest jobs, not read yet)."
    )
    job_id: str | None = Field(
        default=None, description="The `ingest` job that validates it (`/v1/jobs/{job_id}`)."
    )
    error: Problem | None = Field(
        default=None,
        description="Why it failed: the problem a synchronous upload would have answered"
        " (422 bad archive or images, 413 over a limit, 409 same content as another dataset).",
    )
    format: str
    source: str
    uri: str
    class_names: list[str]
    splits: dict[str, int]
    fingerprint: str
    duplicate_of: str | None = Field(
        default=None,
        description="Registered with `allow_duplicate` as a copy: the id of the project's"
        " dataset with the same content (fingerprint), the one registered without it if any;"
        " null for a dataset that is no copy, or whose content no other dataset shares.",
        examples=[None],
    )
    size_bytes: int
    info: dict[str, Any]
    skipped: list[SkippedFiles] = []
    warnings: list[DatasetWarning] = []
    created_at: datetime
    links: dict[str, str] = Field(
        default_factory=dict, description="`self`, and `job` (its ingest job) when it has one."
    )

    @field_validator("info")
    @classmethod
    def _public_info(cls, info: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in info.items() if key not in INTERNAL_INFO}

    @model_validator(mode="after")
    def _links(self) -> DatasetRead:
        self.links = {"self": f"/v1/datasets/{self.id}"}
        if self.job_id:
            self.links["job"] = f"/v1/jobs/{self.job_id}"
        return self


class DatasetList(BaseModel):
    """A page of datasets, newest first."""

    items: list[DatasetRead]
    next_cursor: str | None
