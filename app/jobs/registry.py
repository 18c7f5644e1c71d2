"""Every job type, declared once in its domain and listed here by explicit import.

To add a job type: declare `X = JobType(...)` in your domain's `jobs.py` (or `types.py`),
append it to `JOB_TYPES`, and map its name to its handler in `workers.tasks.HANDLERS`;
`tests/workers/tasks/test_registry.py` fails until both lists agree.

This module imports the domains, so a domain's job-type module builds only on `app.jobtype`
(below the domains), never on `app.jobs`: the import contracts (pyproject.toml) refuse the
cycle. A domain that also creates jobs through `app.jobs.service` declares its types in
`app.jobs.types` instead (as `MEASURES` for `app.measure_requests`).
"""

from __future__ import annotations

from app.finetuning.jobs import EVALUATE, FINETUNE, FINETUNE_POINT
from app.jobs.types import EMBED, EMBED_SHARD, INGEST, MEASURES, SCORE
from app.jobtype import JobResult, JobType, NamedResult
from app.predictors.jobs import ASSESS

JOB_TYPES: tuple[JobType, ...] = (
    EMBED, EMBED_SHARD, SCORE, MEASURES, FINETUNE, FINETUNE_POINT, EVALUATE, ASSESS, INGEST,
)  # fmt: skip
_BY_NAME = {t.name: t for t in JOB_TYPES}


def get(name: str) -> JobType | None:
    """The job type called `name`, if any."""
    return _BY_NAME.get(name)


def all_types(*, public_only: bool = False) -> list[JobType]:
    """Every job type in `JOB_TYPES` order (without the internal ones if `public_only`)."""
    return [t for t in JOB_TYPES if not (public_only and t.internal)]


__all__ = ["JOB_TYPES", "JobResult", "JobType", "NamedResult", "all_types", "get"]
