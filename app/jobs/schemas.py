"""Job schemas: the request is a discriminated union over the registered public job types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field

from app.jobs import registry
from app.models.jobs import JobStatus


def _create_union() -> Any:
    params = tuple(t.params for t in registry.all_types(public_only=True))
    if len(params) == 1:
        return params[0]
    return Annotated[Union[params], Field(discriminator="type")]  # noqa: UP007


JobCreate = _create_union()


class JobRead(BaseModel):
    """A job: its state, progress and links to what it produced."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "job_0193c0ffee00a1b2c3d4e5f6",
                    "type": "embed",
                    "status": "running",
                    "progress": 0.4,
                    "stage": "embedding images",
                    "attempts": 1,
                    "params": {"model_id": "mdl_...", "dataset_id": "dst_...", "split": "test"},
                    "links": {"self": "/v1/jobs/job_0193c0ffee00a1b2c3d4e5f6"},
                }
            ]
        },
    )

    id: str
    type: str
    status: JobStatus
    progress: float
    stage: str | None
    attempts: int
    max_attempts: int
    params: dict[str, Any]
    error: str | None
    result: dict[str, Any] | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    links: dict[str, str] = Field(default_factory=dict)


class JobList(BaseModel):
    """A page of jobs, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[JobRead]
    next_cursor: str | None
