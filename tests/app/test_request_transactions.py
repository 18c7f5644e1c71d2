"""One transaction per request, the key cache's revocation bound (injected clock), and the
in-process serialisation of SQLite write transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, exc, select, update

from app.auth.service import Principal, PrincipalCache
from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope, utcnow
from app.main import create_app
from app.migrate import upgrade
from app.models import ApiKey, Job, Project

KEY = "test-" + "k" * 40


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_keeps_a_principal_for_its_ttl_only() -> None:
    clock = Clock()
    cache = PrincipalCache(5.0, clock=clock)
    who = Principal(project_id="prj_1", project_name="p", is_admin=False)
    assert cache.get("h") is None
    cache.put("h", who)
    clock.now += 4.9
    assert cache.get("h") == who
    clock.now += 0.2
    assert cache.get("h") is None
    uncached = PrincipalCache(0.0, clock=clock)
    uncached.put("h", who)
    assert uncached.get("h") is None


@pytest.fixture
def app_and_clock(tmp_path: Path) -> Iterator[tuple[TestClient, Clock, Any]]:
    settings = Settings(
        data_dir=tmp_path, bootstrap_api_key=KEY, run_maintenance_in_api=False, auth_cache_s=5.0
    )
    app = create_app(settings)
    clock = Clock()
    app.state.principals = PrincipalCache(settings.auth_cache_s, clock=clock)
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client, clock, app


def test_a_revoked_key_stops_working_within_the_cache_ttl(app_and_clock: Any) -> None:
    client, clock, app = app_and_clock
    assert client.get("/v1/jobs").status_code == 200
    with session_scope(app.state.sessionmaker) as session:
        session.execute(update(ApiKey).values(revoked_at=utcnow()))
    assert client.get("/v1/jobs").status_code == 200  # still cached: within the bound
    clock.now += 5.01
    resp = client.get("/v1/jobs")
    assert resp.status_code == 401, resp.text
    assert "revoked" in resp.json()["detail"]


def test_a_read_is_one_transaction_and_a_submission_one_commit(app_and_clock: Any) -> None:
    client, _, app = app_and_clock
    with session_scope(app.state.sessionmaker) as session:
        project = session.scalar(select(Project.id))
        session.add(
            Job(
                id="job_1",
                project_id=project,
                type="measures",
                queue="cpu",
                params={"artifact": "a"},
            )
        )
    assert client.get("/v1/jobs/job_1").status_code == 200  # warms the key cache
    seen: list[str] = []
    read_engine = app.state.read_sessionmaker.kw["bind"]
    write_engine = app.state.sessionmaker.kw["bind"]
    for name, engine in (("read", read_engine), ("write", write_engine)):
        event.listen(engine, "begin", lambda _c, n=name: seen.append(f"{n} begin"))
        event.listen(engine, "commit", lambda _c, n=name: seen.append(f"{n} commit"))
    resp = client.get("/v1/jobs/job_1")
    assert resp.status_code == 200 and resp.json()["id"] == "job_1"
    assert seen == ["read begin", "read commit"]
    seen.clear()
    resp = client.post("/v1/jobs/job_1:cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled", resp.text
    assert seen == ["write begin", "write commit"]
    seen.clear()
    assert client.get("/v1/jobs/job_1").json()["status"] == "cancelled"  # committed
    other = client.get("/v1/jobs/job_nope")
    assert other.status_code == 404 and other.headers["content-type"].startswith(
        "application/problem+json"
    )


def test_sqlite_writers_of_one_process_queue_on_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    engine = make_engine(url, write_lock_timeout_s=0.0)  # fail at once instead of waiting
    factory = make_sessionmaker(engine)
    first = factory()
    first.add(Project(id="prj_1", name="one"))
    first.flush()  # holds the write transaction (and the lock)
    failed: list[BaseException] = []

    def second_writer() -> None:
        try:
            with session_scope(factory) as s:
                s.add(Project(id="prj_2", name="two"))
        except BaseException as err:
            failed.append(err)

    thread = threading.Thread(target=second_writer)
    thread.start()
    thread.join()
    assert len(failed) == 1
    assert isinstance(failed[0], (sqlite3.OperationalError, exc.OperationalError))
    assert "locked" in str(failed[0])
    first.commit()
    first.close()  # back to the pool: the lock is free
    second_writer()
    assert len(failed) == 1
    with session_scope(factory) as s:
        assert sorted(s.scalars(select(Project.name))) == ["one", "two"]
    engine.dispose()
