"""The outbox relay: publishes pending outbox entries; a broker outage only delays them."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import after_commit, session_scope, utcnow
from app.jobs import broker
from app.models import Job, OutboxEntry

log = logging.getLogger("iimm.relay")
_wake = threading.Event()


def wake_relay() -> None:
    """Ask the relay to run now (called after a job's transaction commits)."""
    _wake.set()


def enqueue(*, session: Session, job: Job, use_broker: bool) -> None:
    """Write the outbox entry (broker mode) and wake the relay once committed."""
    job.enqueued_at = utcnow()
    if use_broker:
        session.add(OutboxEntry(job_id=job.id, queue=job.queue))
        after_commit(session, wake_relay)


def wait_for_wake(timeout: float) -> None:
    """Sleep until woken or `timeout` passes."""
    _wake.wait(timeout)
    _wake.clear()


def _pending(session: Session, batch: int) -> list[OutboxEntry]:
    query = select(OutboxEntry).where(OutboxEntry.published_at.is_(None))
    query = query.order_by(OutboxEntry.id).limit(batch)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def relay_once(factory: sessionmaker[Session], settings: Settings, batch: int = 200) -> int:
    """Publish up to `batch` pending entries over one broker connection; returns how many
    were sent. A broker outage stops the pass and records the error on the next entry."""
    with session_scope(factory) as session:
        entries = _pending(session, batch)
        sent = 0
        if not entries:
            return sent
        try:
            with broker.publisher(settings) as send:
                for entry in entries:
                    send(entry.job_id, entry.queue)
                    entry.published_at = utcnow()
                    sent += 1
        except Exception as exc:  # the broker is down: the rest wait for the next pass
            if sent < len(entries):
                session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id == entries[sent].id)
                    .values(tries=OutboxEntry.tries + 1, last_error=str(exc)[:1000])
                )
            log.warning("broker unavailable, %d job(s) wait in the outbox: %s",
                        len(entries) - sent, exc)  # fmt: skip
        return sent
