"""Claim, lease, reaper and relay semantics, in process on a migrated SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope, utcnow
from app.jobs import claims
from app.jobs.reaper import reap_once
from app.jobs.relay import relay_once
from app.migrate import upgrade
from app.models import Job, JobStatus, OutboxEntry, Project


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _job(factory: sessionmaker[Session], max_attempts: int = 2) -> str:
    with session_scope(factory) as s:
        s.add(Project(id="prj_1", name="p"))
        s.flush()  # no ORM relationships (lazy="raise" style): order the inserts ourselves
        s.add(Job(id="job_1", project_id="prj_1", type="score", queue="cpu", params={},
                  max_attempts=max_attempts))  # fmt: skip
    return "job_1"


def _status(factory: sessionmaker[Session], job_id: str) -> Job:
    with session_scope(factory) as s:
        return s.scalars(select(Job).where(Job.id == job_id)).one()


def test_a_second_message_never_runs_a_running_job(factory: sessionmaker[Session]) -> None:
    job_id = _job(factory)
    with session_scope(factory) as s:
        assert claims.claim(session=s, job_id=job_id, worker_id="a", lease_s=60) == 1
    with session_scope(factory) as s:
        assert claims.claim(session=s, job_id=job_id, worker_id="b", lease_s=60) is None
    with session_scope(factory) as s:
        ours, cancel = claims.heartbeat(
            session=s, job_id=job_id, attempt=1, lease_s=60, progress=0.5, stage="x"
        )
    assert ours and not cancel and _status(factory, job_id).progress == 0.5


def _expire(factory: sessionmaker[Session], job_id: str) -> None:
    with session_scope(factory) as s:
        s.get(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]


def test_reaper_requeues_then_fails_with_reason(factory: sessionmaker[Session]) -> None:
    job_id = _job(factory, max_attempts=2)
    settings = Settings(broker_url="redis://unused:1/0")
    for attempt in (1, 2):
        with session_scope(factory) as s:
            assert claims.claim(session=s, job_id=job_id, worker_id="w", lease_s=60) == attempt
        _expire(factory, job_id)
        reap_once(factory, settings)
        job = _status(factory, job_id)
        # a zombie worker of the reaped attempt can no longer finish the job
        with session_scope(factory) as s:
            assert not claims.finish(
                session=s, job_id=job_id, attempt=attempt, status=JobStatus.succeeded
            )
    assert job.status == "failed" and "lost 2 time(s)" in (job.error or "")
    with session_scope(factory) as s:
        assert len(list(s.scalars(select(OutboxEntry)))) == 1  # one re-send after attempt 1


def test_a_lost_run_counts_in_run_s_until_its_last_heartbeat(
    factory: sessionmaker[Session],
) -> None:
    """`run_s` is the time the job held a worker over all its runs: a run the reaper takes
    back (requeued, then failed) held it from its start to its last heartbeat (the lease it
    last renewed, less `lease_s`)."""
    job_id = _job(factory, max_attempts=2)
    settings = Settings(broker_url="redis://unused:1/0", lease_s=60)
    held = []
    for attempt, (ran, ago) in enumerate(((240, 600), (30, 120)), start=1):
        with session_scope(factory) as s:
            assert claims.claim(session=s, job_id=job_id, worker_id="w", lease_s=60) == attempt
            job = s.get(Job, job_id)
            assert job is not None
            job.started_at = utcnow() - timedelta(seconds=ago)
            job.lease_expires_at = job.started_at + timedelta(seconds=ran + 60)
        reap_once(factory, settings)
        held.append(ran)
        job = _status(factory, job_id)
        assert job.run_s == pytest.approx(sum(held), abs=1e-3), attempt
    assert job.status == "failed"


def test_relay_keeps_entries_while_the_broker_is_down(factory: sessionmaker[Session]) -> None:
    job_id = _job(factory)
    with session_scope(factory) as s:
        s.add(OutboxEntry(job_id=job_id, queue="cpu"))
    settings = Settings(broker_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert relay_once(factory, settings) == 0
    with session_scope(factory) as s:
        entry = s.scalars(select(OutboxEntry)).one()
        assert entry.published_at is None and entry.tries == 1 and entry.last_error


def test_stale_queued_jobs_are_resent_only_where_nothing_runs(
    factory: sessionmaker[Session],
) -> None:
    """A long wait behind a running job is a backlog, not a lost message: no duplicate."""
    old = utcnow() - timedelta(hours=1)
    with session_scope(factory) as s:
        s.add(Project(id="prj_1", name="p"))
        s.flush()
        for job_id, queue, status in (("job_a", "gpu", "queued"), ("job_b", "gpu", "running"),
                                      ("job_c", "cpu", "queued")):  # fmt: skip
            lease = utcnow() + timedelta(hours=1)
            s.add(Job(id=job_id, project_id="prj_1", type="embed", queue=queue, params={},
                      status=status, enqueued_at=old, lease_expires_at=lease))  # fmt: skip
    reap_once(factory, Settings(broker_url="redis://unused:1/0", requeue_after_s=60))
    with session_scope(factory) as s:
        assert [e.job_id for e in s.scalars(select(OutboxEntry))] == ["job_c"]


def test_a_resent_job_keeps_its_queue_wait(factory: sessionmaker[Session]) -> None:
    """The reaper re-sends a long-unclaimed job once per `requeue_after_s` without moving
    its `enqueued_at`: the worker that finally claims it records the whole wait."""
    job_id = _job(factory)
    with session_scope(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.enqueued_at = utcnow() - timedelta(hours=1)
    settings = Settings(broker_url="redis://unused:1/0", requeue_after_s=60)
    reap_once(factory, settings)
    reap_once(factory, settings)  # the first re-send is recent: no second one
    with session_scope(factory) as s:
        assert [e.job_id for e in s.scalars(select(OutboxEntry))] == [job_id]
        assert claims.claim(session=s, job_id=job_id, worker_id="w", lease_s=60) == 1
    assert (_status(factory, job_id).queue_wait_s or 0) >= 3600


@pytest.mark.parametrize(("status", "done"), [(JobStatus.succeeded, 4), (JobStatus.failed, 3)])
def test_a_succeeded_job_has_done_every_unit(
    factory: sessionmaker[Session], status: JobStatus, done: int
) -> None:
    """The last dataset evaluated after the last progress write still counts once the job
    succeeded (`succeeded 4/4 datasets`); a failed job keeps what it had done."""
    from app.jobs.schemas import JobProgress

    job_id = _job(factory)
    detail = {"done": 3, "total": 4, "unit": "datasets"}
    with session_scope(factory) as s:
        assert claims.claim(session=s, job_id=job_id, worker_id="a", lease_s=60) == 1
        claims.heartbeat(session=s, job_id=job_id, attempt=1, lease_s=60, progress=0.9,
                         stage="evaluating", detail=detail)  # fmt: skip
    with session_scope(factory) as s:
        error = "boom" if status == JobStatus.failed else None
        assert claims.finish(session=s, job_id=job_id, attempt=1, status=status, error=error)
    progress = JobProgress.of(_status(factory, job_id))
    assert (progress.stage, progress.done, progress.total, progress.unit) == (
        status.value,
        done,
        4,
        "datasets",
    )


def test_a_running_job_cancelled_with_a_reason_keeps_it_when_it_stops(
    factory: sessionmaker[Session],
) -> None:
    """A cascade delete cancels a running job with a reason (`cancel_tree`): the worker that
    then stops it as cancelled (no error of its own) leaves the reason as the job's error."""
    from app.jobs.children import cancel_tree

    job_id = _job(factory)
    with session_scope(factory) as s:
        assert claims.claim(session=s, job_id=job_id, worker_id="w", lease_s=60) == 1
    why = "cancelled: model 'tiny' (mdl_1) deleted with cascade"
    with session_scope(factory) as s:
        cancel_tree(session=s, job_id=job_id, reason=why)
    with session_scope(factory) as s:
        ours, cancel = claims.heartbeat(
            session=s, job_id=job_id, attempt=1, lease_s=60, progress=0.5, stage="x"
        )
    assert ours and cancel
    with session_scope(factory) as s:
        assert claims.finish(session=s, job_id=job_id, attempt=1, status=JobStatus.cancelled)
    job = _status(factory, job_id)
    assert job.status == "cancelled" and job.error == why
