"""Job events into the webhook outbox: one delivery row per interested endpoint, written in
the transaction of the status change, so an event exists if and only if the change does."""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import after_commit, new_id, utcnow
from app.models import Job, JobStatus, WebhookDelivery, WebhookEndpoint

_wake = threading.Event()


def wake_sender() -> None:
    """Ask this process's delivery thread to look for due deliveries now."""
    _wake.set()


def wait_for_wake(timeout: float) -> None:
    """Sleep until woken or `timeout` passes."""
    _wake.wait(timeout)
    _wake.clear()


def record_job_event(session: Session, job_id: str, status: JobStatus | str) -> int:
    """Queue a ``job.<status>`` event for each endpoint of the job's project that wants it;
    returns how many. Call after the update that made the change, in its transaction."""
    job = session.execute(
        select(Job.project_id, Job.type, Job.error).where(Job.id == job_id)
    ).first()
    if job is None:
        return 0
    endpoints = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.project_id == job.project_id)
    ).all()
    event = f"job.{JobStatus(status).value}"
    wanted = [e for e in endpoints if not e.event_types or event in e.event_types]
    if not wanted:
        return 0
    now = utcnow()
    data = {"id": job_id, "type": job.type, "status": JobStatus(status).value,
            "error": job.error, "links": {"self": f"/v1/jobs/{job_id}"}}  # fmt: skip
    payload = {"type": event, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}
    for endpoint in wanted:
        session.add(WebhookDelivery(
            id=new_id("msg"), project_id=job.project_id, endpoint_id=endpoint.id,
            event_type=event, job_id=job_id, payload=payload, next_attempt_at=now,
        ))  # fmt: skip
    after_commit(session, wake_sender)
    return len(wanted)
