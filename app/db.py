"""Database plumbing: the declarative base, engines and transactional scopes (no FastAPI)."""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The API's thread pool is capped below the connection pool (see app.main), so a request
# holding a connection always finds a thread to finish on: no pool-exhaustion deadlock.
POOL_SIZE, POOL_OVERFLOW = 20, 20
API_THREADS = 32


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A time-ordered id (`prefix_` + 12 hex digits of ms + 12 random hex digits).

    Ids sort by creation time, so cursor pagination can order by id alone.
    """
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops tz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # in UTC whatever the session's time zone: one timestamp format in every response
        return value.astimezone(UTC) if value is not None else None


class Base(DeclarativeBase):
    """Shared base of every table, with constraint names Alembic can rely on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RecordMixin:
    """A string primary key and a creation time."""

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, open transactions (savepoints then work).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


SQLITE_LOCK_TIMEOUT_S = 30.0


class SQLiteWriteLock:
    """Serialises one process's write transactions on an SQLite engine with a lock.

    Taken before `BEGIN IMMEDIATE` and released when the connection goes back to the pool
    (after its commit or rollback), so this process's writers queue here and start the
    moment the previous one ends, instead of polling SQLite's busy handler (which sleeps up
    to 100 ms a try). Other processes (workers) still meet at `BEGIN IMMEDIATE` and
    `busy_timeout`. Waiting longer than `timeout_s` raises sqlite3's "database is locked".
    """

    def __init__(self, timeout_s: float = SQLITE_LOCK_TIMEOUT_S) -> None:
        self._lock = threading.Lock()
        self.timeout_s = timeout_s

    def install(self, engine: Engine) -> None:
        """Take the lock at each transaction's begin, release it at check-in."""
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "checkin", self._checkin)

    def _begin(self, conn: Any) -> None:
        info = conn.connection.record_info
        if not info.get("write_lock"):
            if not self._lock.acquire(timeout=self.timeout_s):
                raise sqlite3.OperationalError("database is locked")
            info["write_lock"] = True
        # IMMEDIATE: take SQLite's write lock up front, so a read-then-write transaction
        # never fails with SQLITE_BUSY_SNAPSHOT.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    def _checkin(self, _dbapi_conn: Any, record: Any) -> None:
        if record.record_info.pop("write_lock", False):
            self._lock.release()


def _sqlite_begin_read(conn: Any) -> None:
    # Read-only sessions (GET requests): a WAL snapshot that never waits for writers.
    conn.exec_driver_sql("BEGIN")


def make_engine(
    url: str, *, read_only: bool = False, write_lock_timeout_s: float = SQLITE_LOCK_TIMEOUT_S
) -> Engine:
    """An engine for `url`: SQLite in WAL mode, or a pre-pinged pool for Postgres.

    `read_only` (SQLite): transactions begin deferred, for sessions that never write;
    otherwise they queue on a `SQLiteWriteLock` (waiting up to `write_lock_timeout_s`).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            pool_timeout=30,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if read_only:
            event.listen(engine, "begin", _sqlite_begin_read)
        else:
            SQLiteWriteLock(write_lock_timeout_s).install(engine)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        pool_recycle=1800,
        pool_timeout=10,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (responses render after it)."""
    return sessionmaker(engine, expire_on_commit=False)


def on_rollback(session: Session, action: Callable[[], None]) -> None:
    """Run `action` if the session's transaction is rolled back (e.g. delete a new file)."""
    session.info.setdefault("on_rollback", []).append(action)


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction has committed (e.g. enqueue a job)."""
    session.info.setdefault("after_commit", []).append(action)


def _run_hooks(session: Session, name: str) -> None:
    for action in session.info.pop(name, []):
        action()
    session.info.pop("on_rollback" if name == "after_commit" else "after_commit", None)


def end_session(session: Session, error: BaseException | None) -> None:
    """Commit (no error) or roll back, run the matching hooks, close; re-raises commit errors."""
    session.info["ended"] = True
    try:
        if error is None:
            try:
                session.commit()
            except BaseException:
                session.rollback()
                _run_hooks(session, "on_rollback")
                raise
            _run_hooks(session, "after_commit")
        else:
            session.rollback()
            _run_hooks(session, "on_rollback")
    finally:
        session.close()


def session_ended(session: Session) -> bool:
    """Whether `end_session` has run on `session`."""
    return bool(session.info.get("ended"))


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back (and run rollback hooks) on error."""
    session = factory()
    try:
        yield session
    except BaseException as exc:
        end_session(session, exc)
        raise
    end_session(session, None)
