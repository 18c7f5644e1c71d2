"""Claiming, heartbeating and finishing jobs with conditional updates (used by workers).

A job runs only under a claim: `status='running'` with this attempt number. Every write of
a worker is conditional on that claim, so a second copy of a message, or a worker whose
lease was taken over, changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs.children import drop_unfinished_models
from app.models import Job, JobStatus
from app.webhooks.events import record_job_event

RUNNING = JobStatus.running.value
QUEUED = JobStatus.queued.value


def claim(*, session: Session, job_id: str, worker_id: str, lease_s: float) -> int | None:
    """Take a queued job; returns the attempt number, or None if someone else has it."""
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == QUEUED, Job.attempts < Job.max_attempts)
        .values(
            status=RUNNING,
            attempts=Job.attempts + 1,
            worker_id=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=now,
            stage="starting",
            progress_detail=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return None
    attempt, enqueued_at = session.execute(
        select(Job.attempts, Job.enqueued_at).where(Job.id == job_id)
    ).one()
    wait_s = max(0.0, (now - enqueued_at).total_seconds()) if enqueued_at else None
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(queue_wait_s=wait_s)
        .execution_options(synchronize_session=False)
    )
    record_job_event(session, job_id, JobStatus.running)
    return int(attempt)


def _run_s(session: Session, job_id: str, now: datetime) -> float | None:
    """The job's run time so far plus this run's (a parent runs more than once)."""
    row = session.execute(select(Job.started_at, Job.run_s).where(Job.id == job_id)).first()
    if row is None or row.started_at is None:
        return None
    return (row.run_s or 0.0) + max(0.0, (now - row.started_at).total_seconds())


def next_queued(*, session: Session, queues: list[str]) -> str | None:
    """The oldest queued job of `queues` (the embedded worker's "message")."""
    query = select(Job.id).where(Job.status == QUEUED, Job.queue.in_(queues))
    return session.scalar(query.order_by(Job.id).limit(1))


def heartbeat(
    *,
    session: Session,
    job_id: str,
    attempt: int,
    lease_s: float,
    progress: float | None,
    stage: str | None,
    detail: dict[str, Any] | None = None,
) -> tuple[bool, bool]:
    """Extend the lease and record progress; returns (still ours, cancel requested)."""
    values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_s)}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
    if stage is not None:
        values["stage"] = stage[:100]
        values["progress_detail"] = detail
    values["updated_at"] = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == RUNNING, Job.attempts == attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    cancel = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
    return res.rowcount == 1, cancel  # type: ignore[attr-defined]


def poll(*, session: Session, job_id: str, attempt: int) -> tuple[bool, bool]:
    """Read-only check between heartbeats: (still ours, cancel requested)."""
    row = session.execute(
        select(Job.status, Job.attempts, Job.cancel_requested).where(Job.id == job_id)
    ).first()
    if row is None:
        return False, True
    return row.status == RUNNING and row.attempts == attempt, bool(row.cancel_requested)


def finish(
    *,
    session: Session,
    job_id: str,
    attempt: int,
    status: JobStatus,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Move our running attempt to a final status; False if the claim was lost. A failed or
    cancelled fine-tune's model still `evaluating` goes in the same transaction; a cancelled
    job without `error` keeps the one its cancel gave (a cascade delete's reason).

    A succeeded job's progress is complete: fraction 1 and, when its last stage counted
    units, `done` = `total` (the last units may have finished after the last progress write).
    """
    now = utcnow()
    values: dict[str, Any] = {
        "status": status.value,
        "run_s": _run_s(session, job_id, now),
        "finished_at": now,
        "updated_at": now,
        "lease_expires_at": None,
        "stage": status.value,
        "result": result,
        "error": error[:4000] if error else None,
    }
    if status == JobStatus.cancelled and not error:
        del values["error"]  # a cancel's reason (`cancel_tree`) stays
    if status == JobStatus.succeeded:
        values["progress"] = 1.0
        detail = session.scalar(select(Job.progress_detail).where(Job.id == job_id))
        if detail and detail.get("total") is not None:
            values["progress_detail"] = {**detail, "done": detail["total"]}
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == RUNNING, Job.attempts == attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if status in (JobStatus.failed, JobStatus.cancelled):
        drop_unfinished_models(session, [job_id])
    record_job_event(session, job_id, status)
    return True


def release(
    *, session: Session, job_id: str, attempt: int, reason: str, refund: bool = False
) -> bool:
    """Give a running attempt back to the queue (transient failure); False if not ours.

    `refund`: the attempt does not count against `max_attempts` (the worker was stopped,
    the job did not fail); attempt numbers stay unique, so a late write of the stopped
    attempt still matches nothing.
    """
    extra: dict[str, Any] = {"max_attempts": Job.max_attempts + 1} if refund else {}
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == RUNNING, Job.attempts == attempt)
        .values(
            **extra,
            status=QUEUED,
            lease_expires_at=None,
            stage=f"retrying: {reason}"[:100],
            progress_detail=None,
            run_s=_run_s(session, job_id, now),
            enqueued_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_job_event(session, job_id, JobStatus.queued)
    return True


def wait(
    *,
    session: Session,
    job_id: str,
    attempt: int,
    stage: str,
    progress: float | None,
    detail: dict[str, Any] | None = None,
    waits_for: str | None = None,
) -> bool:
    """Our running attempt becomes `waiting` (for its child jobs, or the job `waits_for`:
    `app.jobs.dependencies`), giving its worker back;
    the attempt is refunded as in `release` (the next run is a continuation, not a retry).
    False if the claim was lost or cancellation was asked for (then the caller finishes it
    as cancelled)."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": JobStatus.waiting.value,
        "max_attempts": Job.max_attempts + 1,
        "run_s": _run_s(session, job_id, now),
        "lease_expires_at": None,
        "stage": stage[:100],
        "progress_detail": detail,
        "waits_for": waits_for,
        "updated_at": now,
    }
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
    res = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == RUNNING,
            Job.attempts == attempt,
            Job.cancel_requested.is_(False),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]
