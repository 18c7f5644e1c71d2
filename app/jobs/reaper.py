"""The reaper: re-queues jobs whose worker vanished, fails them past the retry limit, fails
datasets whose ingest job ended without validating them, and queues waiting jobs whose
children (or the job they wait for) are all final (if the last one's wake was lost)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import session_scope, utcnow
from app.jobs.children import drop_unfinished_models, settle_models, wake_ready_parents
from app.jobs.dependencies import settle_datasets
from app.jobs.relay import wake_relay
from app.models import Job, JobStatus, OutboxEntry
from app.webhooks.events import record_job_event

log = logging.getLogger("iimm.reaper")


def _expired(session: Session, settings: Settings) -> list[Job]:
    now = utcnow()
    too_old = now - timedelta(seconds=settings.job_max_runtime_s)
    query = select(Job).where(
        Job.status == JobStatus.running.value,
        or_(Job.lease_expires_at < now, Job.started_at < too_old),
    )
    return list(session.scalars(query.limit(500)))


def _requeue(session: Session, job: Job, settings: Settings) -> None:
    attempt, now = job.attempts, utcnow()
    base = update(Job).where(
        Job.id == job.id, Job.status == JobStatus.running.value, Job.attempts == attempt
    )
    if job.cancel_requested:
        values = {"status": JobStatus.cancelled.value, "finished_at": now, "stage": "cancelled"}
    elif attempt >= job.max_attempts:
        values = {
            "status": JobStatus.failed.value,
            "finished_at": now,
            "stage": "failed",
            "error": f"the worker running this job was lost {attempt} time(s) (lease expired);"
            " giving up after max_attempts. Check worker logs (out of memory? killed?).",
        }
    else:
        values = {"status": JobStatus.queued.value, "enqueued_at": now, "stage": "requeued"}
    values |= {"lease_expires_at": None, "updated_at": now}
    if job.started_at is not None:  # the lost run held its worker until its last heartbeat
        held = _held_s(job.started_at, job.lease_expires_at, settings, now)
        values["run_s"] = (job.run_s or 0.0) + held
    res = session.execute(base.values(**values).execution_options(synchronize_session=False))
    if res.rowcount == 1:  # type: ignore[attr-defined]
        record_job_event(session, job.id, values["status"])
    if res.rowcount == 1 and values["status"] != JobStatus.queued.value:  # type: ignore[attr-defined]
        drop_unfinished_models(session, [job.id])
    if res.rowcount == 1 and values["status"] == JobStatus.queued.value and settings.uses_broker:  # type: ignore[attr-defined]
        session.add(OutboxEntry(job_id=job.id, queue=job.queue))
    log.warning("job %s lease expired (attempt %s): now %s", job.id, attempt, values["status"])


def _held_s(
    started_at: datetime, lease_expires_at: datetime | None, settings: Settings, now: datetime
) -> float:
    """Seconds a lost run held its worker: from its start to its last heartbeat (the lease
    it last renewed, less `lease_s`), so a job's `run_s` counts every run, lost ones too."""
    last = now
    if lease_expires_at is not None:
        last = min(now, lease_expires_at - timedelta(seconds=settings.lease_s))
    return max(0.0, (last - started_at).total_seconds())


def _stale_queued(session: Session, settings: Settings) -> int:
    """Queued jobs nobody claimed for a long time: their message may be lost; send again.

    Only on queues where nothing runs: while a queue's workers are busy, a long wait is a
    backlog (a grid's children on few GPUs), and re-sending would only pile up duplicates.
    At most once per `requeue_after_s` (by the job's newest outbox entry); `enqueued_at`
    stays, so the job's `queue_wait_s` still counts from its (re)queueing."""
    cutoff = utcnow() - timedelta(seconds=settings.requeue_after_s)
    busy = select(Job.queue).where(Job.status == JobStatus.running.value).distinct()
    sent = select(OutboxEntry.job_id).where(OutboxEntry.created_at >= cutoff)
    stale = list(
        session.scalars(
            select(Job).where(
                Job.status == JobStatus.queued.value,
                Job.enqueued_at < cutoff,
                Job.queue.not_in(busy),
                Job.id.not_in(sent),
            )
        )
    )
    for job in stale:
        session.add(OutboxEntry(job_id=job.id, queue=job.queue))
    return len(stale)


def reap_once(factory: sessionmaker[Session], settings: Settings) -> int:
    """One reaper pass; returns how many jobs it touched."""
    with session_scope(factory) as session:
        expired = _expired(session, settings)
        for job in expired:
            _requeue(session, job, settings)
        resent = _stale_queued(session, settings) if settings.uses_broker else 0
        settled = settle_datasets(session) + settle_models(session)
        woken = wake_ready_parents(session=session, use_broker=settings.uses_broker)
    if expired or resent or woken or settled:
        wake_relay()
    return len(expired) + resent + woken + settled
