"""What a job type declares: its parameter schema, queue, reference checks and links.

Each domain declares its types as module constants (`EMBED = JobType(...)`); the one list
of them is `app.jobs.registry.JOB_TYPES`, and their handlers are `workers.tasks.HANDLERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

Check = Callable[[Session, str, BaseModel], None]
Links = Callable[[str, dict[str, Any], dict[str, Any] | None], dict[str, str]]


@dataclass(frozen=True)
class JobType:
    """One kind of job: `params` has a `type: Literal[name]` field; `check` raises on bad
    references at submission (404/409/422); `links` names what a job of it produced;
    `internal` types are created by the service itself, never by `POST /v1/jobs`;
    `result` (a `JobResult` with the same `type` literal) is the shape of what it returns."""

    name: str
    params: type[BaseModel]
    queue: str
    check: Check | None = None
    links: Links | None = None
    internal: bool = False
    result: type[BaseModel] | None = None


class JobResult(BaseModel):
    """Base of a job type's result: `type` names the job type (the union's discriminator).

    Extra keys are kept: the fields declared are the contract, a worker may add figures.
    """

    model_config = ConfigDict(extra="allow")


class NamedResult(JobResult):
    """A result that names the job's model and dataset beside their ids in `params`."""

    model_name: str | None = Field(default=None, description="The model's name.")
    dataset_name: str | None = Field(default=None, description="The dataset's name.")
