"""Idempotent creation on a migrated database (SQLite and Postgres): replay, refusal of a
changed body, and the race of two first requests with one key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, session_scope
from app.errors import InvalidError
from app.idempotency import insert_once, replay, request_hash
from app.migrate import upgrade
from app.models import Job, Project
from tests.service.conftest import _postgres_up
from tests.service.stack import create_database, drop_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One migrated database of each kind for the module (tests roll back what they did)."""
    if request.param == "postgres":
        if not _postgres_up():
            pytest.skip("Postgres is not running on 127.0.0.1:5432")
        url = create_database()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('idempotency') / 'i.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    if request.param == "postgres":
        drop_database(url)


@pytest.fixture
def factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions inside one transaction that the test never commits: each `session_scope`
    commits or rolls back a savepoint, and the whole test is rolled back at the end."""
    with engine.connect() as conn:
        outer = conn.begin()
        factory = sessionmaker(bind=conn, expire_on_commit=False,
                               join_transaction_mode="create_savepoint")  # fmt: skip
        with session_scope(factory) as s:
            s.add(Project(id="prj_1", name="p"))
        try:
            yield factory
        finally:
            outer.rollback()


def _job(job_id: str, key: str | None, digest: str) -> Job:
    return Job(id=job_id, project_id="prj_1", type="score", queue="cpu", params={},
               max_attempts=1, idempotency_key=key, request_hash=digest)  # fmt: skip


def test_request_hash_ignores_key_order_only() -> None:
    assert request_hash({"a": 1, "b": [2, 3]}) == request_hash({"b": [2, 3], "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})


def test_replay_returns_the_first_row_and_refuses_another_body(
    factory: sessionmaker[Session],
) -> None:
    digest = request_hash({"x": 1})
    with session_scope(factory) as s:
        assert replay(s, Job, "prj_1", "k", digest) is None
        row, created = insert_once(s, _job("job_1", "k", digest), digest)
        assert created and row.id == "job_1"
    with session_scope(factory) as s:
        assert replay(s, Job, "prj_1", None, digest) is None  # no key: always a new row
        assert replay(s, Job, "prj_2", "k", digest) is None  # keys are per project
        again = replay(s, Job, "prj_1", "k", digest)
        assert again is not None and again.id == "job_1"
        with pytest.raises(InvalidError, match="different request body"):
            replay(s, Job, "prj_1", "k", request_hash({"x": 2}))


def test_the_loser_of_a_race_gets_the_winners_row(factory: sessionmaker[Session]) -> None:
    digest = request_hash({"x": 1})
    # Both requests look the key up before either has inserted (on SQLite the embedded
    # mode's BEGIN IMMEDIATE serialises whole requests; the lookup is then a separate step).
    with session_scope(factory) as loser:
        assert replay(loser, Job, "prj_1", "k", digest) is None
    with session_scope(factory) as winner:
        assert insert_once(winner, _job("job_w", "k", digest), digest)[1]
    with session_scope(factory) as loser:
        row, created = insert_once(loser, _job("job_l", "k", digest), digest)
        assert not created and row.id == "job_w"
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1  # the loser left nothing


def test_a_different_body_in_the_race_is_refused(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as winner:
        insert_once(winner, _job("job_w", "k", request_hash({"x": 1})), request_hash({"x": 1}))
    other = request_hash({"x": 2})
    with session_scope(factory) as s, pytest.raises(InvalidError, match="different request"):
        insert_once(s, _job("job_l", "k", other), other)


def test_an_unrelated_integrity_error_is_not_swallowed(factory: sessionmaker[Session]) -> None:
    from sqlalchemy.exc import IntegrityError

    digest = request_hash({})
    with session_scope(factory) as s:
        insert_once(s, _job("job_1", None, digest), digest)
    with session_scope(factory) as s, pytest.raises(IntegrityError):
        insert_once(s, _job("job_1", "fresh", digest), digest)  # duplicate primary key
