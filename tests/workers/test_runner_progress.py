"""Progress as data: the heartbeat thread writes what a handler reports, throttled, and
notices cancellation; `JobRead.progress` gathers it (in process, on a migrated SQLite file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import Storage
from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope
from app.jobs import claims
from app.jobs.schemas import JobRead
from app.migrate import upgrade
from app.models import Job, Project
from workers.runner import Heartbeat, WorkerEnv
from workers.tasks.base import JobCancelledError, JobContext

PARAMS = {"model_id": "mdl_1", "dataset_id": "dst_1", "split": "test"}  # what JobRead types


@pytest.fixture
def env(tmp_path: Path) -> Iterator[WorkerEnv]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    engine = make_engine(url)
    # the heartbeat renews a lease every lease/3 of real time: an hour's lease keeps a renewal
    # out of these ticks (test_nothing_new_is_not_written_again) however slow the machine
    settings = Settings(data_dir=tmp_path, lease_s=3600.0)
    yield WorkerEnv(settings, make_sessionmaker(engine), Storage(str(tmp_path / "a")), "w:1")
    engine.dispose()


def _read(sessions: sessionmaker[Session], job_id: str = "job_1") -> JobRead:
    with session_scope(sessions) as s:
        return JobRead.model_validate(s.scalars(select(Job).where(Job.id == job_id)).one())


def _running(env: WorkerEnv) -> JobContext:
    with session_scope(env.sessions) as s:
        s.add(Project(id="prj_1", name="p"))
        s.flush()
        s.add(Job(id="job_1", project_id="prj_1", type="embed", queue="gpu", params=PARAMS))
    assert _read(env.sessions).progress.stage == "queued"
    with session_scope(env.sessions) as s:
        attempt = claims.claim(session=s, job_id="job_1", worker_id="w:1", lease_s=60)
    assert attempt == 1
    return JobContext(
        job_id="job_1", project_id="prj_1", attempt=1, params=PARAMS,
        settings=env.settings, sessions=env.sessions, storage=env.storage,
    )  # fmt: skip


def test_reported_units_reach_the_job(env: WorkerEnv) -> None:
    ctx = _running(env)
    beat = Heartbeat(env, ctx)
    assert _read(env.sessions).progress.stage == "starting"
    ctx.progress(0.25, "embedding", done=64, total=256, unit="images")
    beat.beat()
    p = _read(env.sessions).progress
    assert (p.stage, p.fraction, p.done, p.total, p.unit) == ("embedding", 0.25, 64, 256, "images")
    assert p.loss is None and p.epoch is None
    ctx.progress(0.5, "training", done=10, total=40, unit="steps", epoch=2, epochs=8,
                 loss=0.75, val_acc=0.5)  # fmt: skip
    beat.beat()
    p = _read(env.sessions).progress
    assert (p.stage, p.done, p.total, p.unit) == ("training", 10, 40, "steps")
    assert (p.epoch, p.epochs, p.loss, p.val_acc) == (2, 8, 0.75, 0.5)
    # a report without figures clears the previous stage's
    ctx.progress(0.9, "predicting")
    beat.beat()
    p = _read(env.sessions).progress
    assert (p.stage, p.fraction, p.done, p.loss) == ("predicting", 0.9, None, None)


def test_nothing_new_is_not_written_again(env: WorkerEnv) -> None:
    ctx = _running(env)
    beat = Heartbeat(env, ctx)
    ctx.progress(0.1, "embedding", done=1, total=10, unit="images")
    beat.beat()
    first = _read(env.sessions).updated_at
    for _ in range(3):  # ticks with no new report (and the lease far from due): reads only
        beat.beat()
    assert _read(env.sessions).updated_at == first
    ctx.progress(0.2, "embedding", done=2, total=10, unit="images")
    beat.beat()
    assert _read(env.sessions).progress.done == 2


def test_a_cancel_request_stops_the_next_report(env: WorkerEnv) -> None:
    ctx = _running(env)
    beat = Heartbeat(env, ctx)
    ctx.progress(0.1, "embedding", done=1, total=10, unit="images")
    with session_scope(env.sessions) as s:
        s.execute(update(Job).where(Job.id == "job_1").values(cancel_requested=True))
    beat.beat()  # a read-only tick notices the flag
    assert ctx.cancelled.is_set() and not beat.lost.is_set()
    with pytest.raises(JobCancelledError):
        ctx.progress(0.2, "embedding", done=2, total=10, unit="images")
    with pytest.raises(JobCancelledError):
        ctx.check_cancelled()


def test_a_lost_claim_cancels_and_marks_lost(env: WorkerEnv) -> None:
    ctx = _running(env)
    beat = Heartbeat(env, ctx)
    with session_scope(env.sessions) as s:
        s.execute(update(Job).where(Job.id == "job_1").values(attempts=2))  # taken over
    beat.beat()
    assert ctx.cancelled.is_set() and beat.lost.is_set()


def test_finished_jobs_say_their_status(env: WorkerEnv) -> None:
    from app.models import JobStatus

    ctx = _running(env)
    ctx.progress(0.5, "embedding", done=5, total=10, unit="images")
    Heartbeat(env, ctx).beat()
    with session_scope(env.sessions) as s:
        assert claims.finish(session=s, job_id="job_1", attempt=1, status=JobStatus.succeeded)
    p = _read(env.sessions).progress
    assert (p.stage, p.fraction) == ("succeeded", 1.0)
