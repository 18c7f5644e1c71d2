"""Jobs on datasets that are not ready: they wait for the dataset's `ingest` job.

A dataset is `validating` while its ingest job runs (`INGEST`, `app.jobs.types`). A job that
names it (`dataset_id`, `dataset_ids`, `evaluate_on`) is accepted at submission and, when a worker
takes it, `gate` parks it: the job becomes `waiting` with `waits_for` = the ingest job, holding
no worker (as a parent waits for its children, `app.jobs.children`). Whoever makes the ingest
job final calls `job_final` in that transaction: a dataset it left `validating` (a crash past
its retries, a cancel) becomes `failed`, and the jobs waiting for it are queued again; their
next run passes the gate or fails naming the dataset and why. The reaper's pass runs
`settle_datasets` and `children.wake_ready_parents` (which treats `waits_for` as a child) as
the backstop for anything lost.

The gate reads the datasets `FOR UPDATE` (Postgres), and the ingest job's success writes the
dataset row before it wakes the waiting jobs, so of the two the second sees the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import ConflictError, problem_body
from app.jobs.relay import enqueue
from app.models import Dataset, Job, JobStatus

VALIDATING, FAILED = "validating", "failed"
_LIST_KEYS = ("dataset_ids", "evaluate_on")


def dataset_ids(params: dict[str, Any]) -> list[str]:
    """The dataset ids a job's parameters name (`dataset_id`, `dataset_ids`, `evaluate_on`)."""
    ids = [params["dataset_id"]] if isinstance(params.get("dataset_id"), str) else []
    for key in _LIST_KEYS:
        ids += [i for i in params.get(key) or [] if isinstance(i, str)]
    return list(dict.fromkeys(ids))


def failure(name: str, dataset_id: str, error: dict[str, Any] | None) -> str:
    """What a job on a dataset that failed validation says."""
    why = (error or {}).get("detail") or "its ingest job failed"
    return f"dataset {name!r} ({dataset_id}) failed validation: {why}"


@dataclass(frozen=True)
class Gate:
    """Why a job cannot run yet: `wait_for` (a job id) with `stage`, or `error` (fail it)."""

    wait_for: str | None = None
    stage: str = ""
    error: str | None = None


def gate(session: Session, project_id: str, params: dict[str, Any], job_id: str) -> Gate | None:
    """None when every dataset job `job_id` names is ready (or gone: its handler says so);
    else wait for the first one's ingest job, or fail naming one that failed validation."""
    ids = dataset_ids(params)
    if not ids:
        return None
    rows = session.execute(
        select(Dataset.id, Dataset.name, Dataset.status, Dataset.job_id, Dataset.error)
        .where(Dataset.project_id == project_id, Dataset.id.in_(ids))
        .order_by(Dataset.id)
        .with_for_update()
    ).all()
    for row in rows:
        if row.status == FAILED:
            return Gate(error=failure(row.name, row.id, row.error))
    for row in rows:
        if row.status != VALIDATING or not row.job_id or row.job_id == job_id:
            continue
        ingest = session.execute(select(Job.status, Job.error).where(Job.id == row.job_id)).first()
        if ingest is None or ingest.status in _FINAL:
            what = f"{ingest.status}: {ingest.error or ''}" if ingest is not None else "vanished"
            detail = f"its ingest job {row.job_id} {what}".rstrip(": ")
            return Gate(error=failure(row.name, row.id, {"detail": detail}))
        return Gate(wait_for=row.job_id, stage=f"waiting for dataset {row.name} to be validated")
    return None


def refuse_failed(session: Session, project_id: str, params: dict[str, Any]) -> None:
    """409 at submission when a dataset the job names failed validation."""
    ids = dataset_ids(params)
    if not ids:
        return
    row = session.execute(
        select(Dataset.id, Dataset.name, Dataset.error).where(
            Dataset.project_id == project_id, Dataset.id.in_(ids), Dataset.status == FAILED
        )
    ).first()
    if row is not None:
        raise ConflictError(
            failure(row.name, row.id, row.error) + "; upload it again once fixed (same name)"
        )


_FINAL = (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value)


def settle_datasets(session: Session, job_ids: list[str] | None = None) -> int:
    """Datasets left `validating` by an ingest job that ended without success (crashed past
    its retries, lost, cancelled) become `failed`, the job's error as their problem; only
    those of `job_ids` when given. Returns how many."""
    query = (
        select(Dataset, Job.status, Job.error)
        .join(Job, Job.id == Dataset.job_id)
        .where(
            Dataset.status == VALIDATING,
            Job.status.in_([JobStatus.failed.value, JobStatus.cancelled.value]),
        )
    )
    if job_ids is not None:
        query = query.where(Job.id.in_(job_ids))
    found = session.execute(query.limit(500)).all()
    for dataset, status, error in found:
        dataset.status = FAILED
        if status == JobStatus.cancelled.value:
            detail = f"its ingest job {dataset.job_id} was cancelled; upload it again"
            dataset.error = problem_body("conflict", detail)
        else:
            detail = f"its ingest job {dataset.job_id} failed: {error or 'no reason recorded'}"
            dataset.error = problem_body("internal", detail)
        dataset.error = {**dataset.error, "instance": f"/v1/datasets/{dataset.id}"}
    session.flush()
    return len(found)


def wake_waiting(*, session: Session, job_id: str, use_broker: bool) -> int:
    """Queue again the jobs waiting for `job_id` (it is final); returns how many."""
    waiting = session.scalars(
        select(Job)
        .where(Job.waits_for == job_id, Job.status == JobStatus.waiting.value)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for job in waiting:
        job.status = JobStatus.queued.value
        job.waits_for = None
        job.stage = "dataset validated"
        job.updated_at = utcnow()
        enqueue(session=session, job=job, use_broker=use_broker)
    session.flush()
    return len(waiting)


def job_final(*, session: Session, job_id: str, use_broker: bool) -> None:
    """`job_id` just became final (same transaction): settle the dataset it was ingesting,
    if it left it `validating`, and queue the jobs that wait for it."""
    settle_datasets(session, [job_id])
    wake_waiting(session=session, job_id=job_id, use_broker=use_broker)
