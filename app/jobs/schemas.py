"""Job schemas: the request is a discriminated union over the registered public job types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from app.jobs import registry
from app.jobs.registry import JobResult
from app.models.jobs import JobStatus


def _union(models: tuple[type[BaseModel], ...]) -> Any:
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007


def _result_model(job_type: registry.JobType) -> type[BaseModel]:
    """The job type's result model, or an open one carrying only its `type`."""
    if job_type.result is not None:
        return job_type.result
    name = "".join(part.title() for part in job_type.name.split("_")) + "Result"
    return create_model(name, __base__=JobResult, type=(Literal[job_type.name], job_type.name))


JobCreate = _union(tuple(t.params for t in registry.all_types(public_only=True)))
JobParams = _union(tuple(t.params for t in registry.all_types()))
JobResultUnion = _union(tuple(_result_model(t) for t in registry.all_types()))
JobTypeName = Literal[tuple(t.name for t in registry.all_types())]  # type: ignore[valid-type]


class JobProgress(BaseModel):
    """Where a job is: its stage, the fraction done and the stage's own figures.

    Written by the worker at most every `IIMM_PROGRESS_INTERVAL_S` (1 s by default) while
    it runs. A queued job's stage is `queued`; a waiting job's says what it waits for
    (e.g. ``waiting for dataset shapes to be validated``); a finished job's is its final
    status.
    """

    stage: str = Field(examples=["embedding"])
    fraction: float = Field(ge=0.0, le=1.0, description="Share of the whole job done, 0..1.")
    done: int | None = Field(default=None, description="Units of the stage done.")
    total: int | None = Field(default=None, description="Units of the stage in all.")
    unit: str | None = Field(
        default=None, description="What `done`/`total` count.", examples=["images", "steps"]
    )
    epoch: int | None = Field(default=None, description="Fine-tuning: the epoch (1-based).")
    epochs: int | None = Field(default=None, description="Fine-tuning: epochs in all.")
    loss: float | None = Field(
        default=None, description="Fine-tuning: the last step's training cross-entropy."
    )
    val_acc: float | None = Field(
        default=None,
        description="Fine-tuning: top-1 accuracy (0..1) on the validation split "
        "after the last finished epoch.",
    )
    updated_at: datetime | None = Field(
        default=None, description="When the worker last wrote progress (or the job changed)."
    )

    @classmethod
    def of(cls, job: Any) -> JobProgress:
        """The progress of a `Job` row."""
        status = JobStatus(job.status)
        if status == JobStatus.queued:
            stage = "queued"
        elif status == JobStatus.running:
            stage = job.stage or "starting"
        elif status == JobStatus.waiting:  # what it waits for: its children, or a dataset
            stage = job.stage or "waiting"
        else:
            stage = status.value
        detail = job.progress_detail if status != JobStatus.queued else None
        return cls(
            stage=stage,
            fraction=max(0.0, min(1.0, float(job.progress or 0.0))),
            updated_at=job.updated_at,
            **{k: v for k, v in (detail or {}).items() if k in _DETAIL},
        )


_DETAIL = ("done", "total", "unit", "epoch", "epochs", "loss", "val_acc")


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
                    "progress": {
                        "stage": "embedding",
                        "fraction": 0.4,
                        "done": 2048,
                        "total": 5120,
                        "unit": "images",
                    },
                    "attempts": 1,
                    "params": {
                        "type": "embed",
                        "model_id": "mdl_...",
                        "dataset_id": "dst_...",
                        "split": "test",
                    },
                    "links": {"self": "/v1/jobs/job_0193c0ffee00a1b2c3d4e5f6"},
                }
            ]
        },
    )

    id: str
    parent_id: str | None = Field(
        default=None, description="The job that created this one (e.g. a grid's `finetune`)."
    )
    waits_for: str | None = Field(
        default=None,
        description="While `waiting` for another job: its id (e.g. the `ingest` job of a"
        " dataset still being validated).",
    )
    type: JobTypeName = Field(description="The job type; `params` and `result` follow it.")
    status: JobStatus
    progress: JobProgress
    attempts: int
    max_attempts: int
    params: JobParams
    error: str | None
    result: JobResultUnion | None = Field(description="What the job returned, once it succeeded.")
    cancel_requested: bool
    worker: str | None = Field(
        default=None,
        description="The worker (`host:pid`) that ran the job last: the `worker` label of"
        " `iimm_jobs_running` on `/metrics`.",
    )
    queue_wait_s: float | None = Field(
        default=None,
        description="Seconds from the last (re)queueing to the last start"
        " (`iimm_job_queue_wait_seconds` on `/metrics`).",
    )
    run_s: float | None = Field(
        default=None,
        description="Seconds the job held a worker, all its runs together (a run whose worker"
        " was lost up to its last heartbeat; `iimm_job_run_seconds` on `/metrics`).",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    links: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        """A `Job` row's columns, with `progress` gathered from progress, stage and detail."""
        if isinstance(data, dict):
            return data
        names = [n for n in cls.model_fields if n not in ("progress", "links")]
        row = {n: getattr(data, _COLUMNS.get(n, n)) for n in names}
        row["progress"] = JobProgress.of(data)
        # stored without their discriminator: the row's type is it
        row["params"] = {**(data.params or {}), "type": data.type}
        if data.result is not None:
            row["result"] = {**data.result, "type": data.type}
        return row


_COLUMNS = {"worker": "worker_id"}  # JobRead field -> Job column, where they differ


class JobList(BaseModel):
    """A page of jobs, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[JobRead]
    next_cursor: str | None
