"""Job types as a registry: each names its parameter schema, queue and reference checks.

Later job types (finetune, evaluate, fit, assess) call `register(JobType(...))` from their
own module and add that module to `BUILTIN_MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class JobType:
    """One kind of job: `params` has a `type: Literal[name]` field; `check` raises on bad refs;
    `result` (a `JobResult` with the same `type` literal) is the shape of what it returns."""

    name: str
    params: type[BaseModel]
    queue: str
    check: Callable[[Session, str, BaseModel], None] | None = None
    links: Callable[[str, dict[str, Any], dict[str, Any] | None], dict[str, str]] | None = None
    internal: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
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


_REGISTRY: dict[str, JobType] = {}
BUILTIN_MODULES = ("app.jobs.types", "app.finetuning.jobs", "app.predictors.jobs")


def register(job_type: JobType) -> JobType:
    """Add a job type (idempotent for the same name)."""
    _REGISTRY[job_type.name] = job_type
    return job_type


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def get(name: str) -> JobType | None:
    """The registered job type called `name`, if any."""
    _load_builtins()
    return _REGISTRY.get(name)


def all_types(*, public_only: bool = False) -> list[JobType]:
    """Every registered job type, in registration order."""
    _load_builtins()
    return [t for t in _REGISTRY.values() if not (public_only and t.internal)]
