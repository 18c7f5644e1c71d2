"""Two uploads of the same content ingested at the same moment: the database, not the
job's own check, decides, so exactly one becomes `ready` and the other `failed` with the
409 that names it, on SQLite and on Postgres. The interleaving that broke it is made
here on purpose: both ingest jobs check for a duplicate before either writes its result
(each job's success is written by the runner after the handler returns). A copy uploaded
with `allow_duplicate` is still accepted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.artifacts import Storage
from app.config import Settings
from app.datasets.service import accept_upload
from app.db import make_engine, make_sessionmaker, session_scope
from app.jobs import claims
from app.migrate import upgrade
from app.models import Dataset, Job, Project
from tests.service.conftest import _postgres_up
from tests.service.stack import create_database, drop_database, make_task, zip_dir
from workers.tasks.base import JobContext, JobError, Outcome
from workers.tasks.ingest import run_ingest


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'race.db'}"
        return
    if not _postgres_up():
        pytest.skip("Postgres is not running")
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


def _ingest(settings: Settings, factory: Any, storage: Storage, job_id: str) -> Outcome | str:
    """Claim and run ingest job `job_id` up to its result: its `Outcome` (not yet written),
    or the error it failed with."""
    with session_scope(factory) as session:
        attempt = claims.claim(session=session, job_id=job_id, worker_id="test:1", lease_s=600)
        job = session.get(Job, job_id)
        assert attempt is not None and job is not None
        params, project_id = dict(job.params), job.project_id
    ctx = JobContext(
        job_id=job_id, project_id=project_id, attempt=attempt, params=params,
        settings=settings, sessions=factory, storage=storage,
    )  # fmt: skip
    try:
        return run_ingest(ctx)
    except JobError as exc:
        return str(exc)


def test_two_ingests_of_the_same_content_leave_one_ready(db_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url=db_url)
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    factory = make_sessionmaker(engine)
    storage = Storage(settings.artifacts_url, cache_dir=settings.data_dir / "cache")
    archive = zip_dir(make_task(tmp_path / "task", per_class=3), tmp_path / "task.zip")
    with session_scope(factory) as session:
        session.add(Project(id="prj_1", name="p"))
    jobs = {}
    for name, allow in (("first", False), ("second", False), ("copy", True)):
        with session_scope(factory) as session, archive.open("rb") as file:
            row = accept_upload(
                session=session, storage=storage, settings=settings, project_id="prj_1",
                name=name, archive=file, filename="task.zip", allow_duplicate=allow,
            )  # fmt: skip
            assert row.job_id is not None
            jobs[name] = (row.id, row.job_id)
    try:
        # both check for a duplicate (none is ready yet), then both results are written
        results = {n: _ingest(settings, factory, storage, jobs[n][1]) for n in ("first", "second")}
        for result in results.values():
            if isinstance(result, Outcome) and result.write is not None:
                with session_scope(factory) as session:
                    result.write(session)
        copy = _ingest(settings, factory, storage, jobs["copy"][1])
        assert isinstance(copy, Outcome) and copy.write is not None, copy
        with session_scope(factory) as session:
            copy.write(session)
            rows = {r.name: r for r in session.query(Dataset)}
            status = {name: row.status for name, row in rows.items()}
            errors = {name: row.error for name, row in rows.items()}
    finally:
        engine.dispose()
    assert status["copy"] == "ready", status
    pair = {"first": status["first"], "second": status["second"]}
    assert sorted(pair.values()) == ["failed", "ready"], status
    ready = next(n for n, s in pair.items() if s == "ready")
    failed = next(n for n, s in pair.items() if s == "failed")
    problem = errors[failed]
    assert problem is not None and problem["status"] == 409, problem
    assert f"dataset {ready!r} ({jobs[ready][0]})" in problem["detail"], problem
    assert "same content" in problem["detail"] and "allow_duplicate=true" in problem["detail"]
    assert problem["detail"] in str(results[failed]), results[failed]  # the job's error
