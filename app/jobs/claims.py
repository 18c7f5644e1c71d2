"""Claiming, heartbeating and finishing jobs with conditional updates (used by workers).

A job runs only under a claim: `status='running'` with this attempt number. Every write of
a worker is conditional on that claim, so a second copy of a message, or a worker whose
lease was taken over, changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Job, JobStatus

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
    return session.scalar(select(Job.attempts).where(Job.id == job_id))


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
    """Move our running attempt to a final status; False if the claim was lost."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": status.value,
        "finished_at": now,
        "updated_at": now,
        "lease_expires_at": None,
        "stage": status.value,
        "result": result,
        "error": error[:4000] if error else None,
    }
    if status == JobStatus.succeeded:
        values["progress"] = 1.0
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == RUNNING, Job.attempts == attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


def release(
    *, session: Session, job_id: str, attempt: int, reason: str, refund: bool = False
) -> bool:
    """Give a running attempt back to the queue (transient failure); False if not ours.

    `refund`: the attempt does not count against `max_attempts` (the worker was stopped,
    the job did not fail); attempt numbers stay unique, so a late write of the stopped
    attempt still matches nothing.
    """
    extra: dict[str, Any] = {"max_attempts": Job.max_attempts + 1} if refund else {}
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == RUNNING, Job.attempts == attempt)
        .values(
            **extra,
            status=QUEUED,
            worker_id=None,
            lease_expires_at=None,
            stage=f"retrying: {reason}"[:100],
            progress_detail=None,
            enqueued_at=utcnow(),
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]
