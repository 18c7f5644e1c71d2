"""Job service: create (with Idempotency-Key and outbox), read, list, cancel. Flushes only."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import Storage
from app.db import new_id
from app.errors import ConflictError, InvalidError
from app.idempotency import insert_once, replay, request_hash
from app.jobs import children, dependencies, registry
from app.jobs.relay import enqueue
from app.models import Job, JobStatus
from app.models.jobs import FINAL_STATUSES
from app.ownership import get_owned
from app.pagination import page
from app.webhooks.events import record_job_event


def create_job(
    *,
    session: Session,
    project_id: str,
    params: BaseModel,
    idempotency_key: str | None,
    max_attempts: int,
    use_broker: bool,
) -> tuple[Job, bool]:
    """Create a job (or return the one made earlier with the same key); (job, created)."""
    data = params.model_dump(mode="json")
    job_type = registry.get(data["type"])
    if job_type is None:
        raise InvalidError(f"unknown job type {data['type']!r}")
    digest = request_hash(data)
    if existing := replay(session, Job, project_id, idempotency_key, digest):
        return existing, False
    if job_type.check is not None:
        job_type.check(session, project_id, params)
    dependencies.refuse_failed(session, project_id, data)
    job = Job(
        id=new_id("job"),
        project_id=project_id,
        type=job_type.name,
        queue=job_type.queue,
        params={k: v for k, v in data.items() if k != "type"},
        status=JobStatus.queued.value,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        request_hash=digest,
    )
    job, created = insert_once(session, job, digest)
    if not created:
        return job, False
    enqueue(session=session, job=job, use_broker=use_broker)
    session.flush()
    record_job_event(session, job.id, JobStatus.queued)
    return job, True


def get_job(*, session: Session, project_id: str, job_id: str) -> Job:
    """The caller's job `job_id` (404 for other projects' ids)."""
    return get_owned(session, Job, job_id, project_id, "job")


def list_jobs(
    *,
    session: Session,
    project_id: str,
    status: str | None,
    cursor: str | None,
    limit: int,
    parent_id: str | None = None,
) -> tuple[list[Job], str | None]:
    """A page of the caller's jobs, newest first, optionally filtered by status and parent."""
    query = select(Job).where(Job.project_id == project_id)
    if status:
        query = query.where(Job.status == status)
    if parent_id:
        query = query.where(Job.parent_id == parent_id)
    return page(session, query, Job.id, cursor, limit)


def cancel_job(
    *,
    session: Session,
    project_id: str,
    job_id: str,
    use_broker: bool = False,
    storage: Storage | None = None,
    reason: str | None = None,
) -> Job:
    """Cancel a queued or waiting job now, or ask a running one to stop at its next
    heartbeat; its child jobs likewise. A cancelled child lets its waiting parent go on.

    When nothing of the job's tree runs any more, the fine-tune checkpoints it kept to
    resume from (a job given back by a stopping worker keeps them) are removed from
    `storage` after the commit; a running job removes its own when it stops. `reason`
    (a cascade delete's) becomes the `error` of the jobs it cancels."""
    job = get_job(session=session, project_id=project_id, job_id=job_id)
    if job.status in FINAL_STATUSES:
        raise ConflictError(f"job {job_id} already {job.status}; nothing to cancel")
    children.cancel_tree(session=session, job_id=job_id, reason=reason)
    session.flush()
    session.refresh(job)
    if job.status == JobStatus.cancelled.value:  # it was queued or waiting: cancelled now
        record_job_event(session, job_id, JobStatus.cancelled)
        if storage is not None:
            _remove_checkpoints(session, storage, job)
    if job.status in FINAL_STATUSES:
        children.wake_parent(session=session, parent_id=job.parent_id, use_broker=use_broker)
        dependencies.job_final(session=session, job_id=job.id, use_broker=use_broker)
    return job


def cancel_jobs(
    *,
    session: Session,
    project_id: str,
    job_ids: list[str],
    use_broker: bool = False,
    storage: Storage | None = None,
    reason: str | None = None,
) -> None:
    """`cancel_job` each of `job_ids` not final yet, in this transaction (a cascade delete
    of what they name, `app.deletion`, giving `reason`)."""
    for job_id in job_ids:
        if get_job(session=session, project_id=project_id, job_id=job_id).status not in (
            FINAL_STATUSES
        ):
            cancel_job(session=session, project_id=project_id, job_id=job_id,
                       use_broker=use_broker, storage=storage, reason=reason)  # fmt: skip


def _remove_checkpoints(session: Session, storage: Storage, job: Job) -> None:
    """After the commit, remove the checkpoints of `job` (cancelled now) and of its tree
    unless a job of the tree still runs (then it removes its own when it stops)."""
    from app.deletion import remove_artifacts_after_commit

    tree = [job.id, *children.descendants(session, job.id)]
    rows = list(session.execute(select(Job.type, Job.status, Job.params).where(Job.id.in_(tree))))
    if any(r.status == JobStatus.running.value for r in rows):
        return
    keys = {f"finetune/{job.id}"} if job.type == "finetune" else set()
    keys |= {str(r.params["checkpoint_key"]) for r in rows
             if r.type == "finetune_point" and r.params.get("checkpoint_key")}  # fmt: skip
    remove_artifacts_after_commit(session, storage, {k for k in keys if storage.exists(k)})


def links(job: Job) -> dict[str, str]:
    """Links of a job: itself, and what its type says it produced."""
    out = {"self": f"/v1/jobs/{job.id}", "cancel": f"/v1/jobs/{job.id}:cancel"}
    job_type = registry.get(job.type)
    if job_type is not None and job_type.links is not None:
        out |= job_type.links(job.id, job.params, job.result)
    return out
