"""The baseline of `benchmarks/api.py`: a minimal FastAPI + SQLAlchemy app doing the same work.

`GET /v1/jobs/{id}`: the key looked up by SHA-256, one row read by primary key.
`POST /v1/jobs`: the key, then a job row and an outbox row inserted in one transaction.
Database from `BENCH_BASELINE_DB`, the key from `BENCH_KEY`; `make_baseline` is a uvicorn
`--factory` target.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel as Schema
from pydantic import ConfigDict
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class Key(Base):
    __tablename__ = "keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(String(40))


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40), index=True)
    type: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Outbox(Base):
    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))


class JobIn(Schema):
    model_config = ConfigDict(extra="forbid")
    type: str
    model_id: str
    dataset_id: str
    split: str = "test"


class JobOut(Schema):
    model_config = ConfigDict(from_attributes=True)
    id: str
    type: str
    params: dict[str, Any]
    status: str
    created_at: datetime


SESSIONS: list[sessionmaker[Session]] = []


def db() -> Iterator[Session]:
    """One session per request."""
    with SESSIONS[0]() as session:
        yield session


DB = Annotated[Session, Depends(db)]


def project(authorization: Annotated[str, Header()], session: DB) -> str:
    """The caller's project from its key's SHA-256."""
    digest = hashlib.sha256(authorization.removeprefix("Bearer ").encode()).hexdigest()
    found = session.scalar(select(Key.project_id).where(Key.key_hash == digest))
    if found is None:
        raise HTTPException(401)
    return found


ProjectId = Annotated[str, Depends(project)]


def healthz() -> dict[str, str]:
    return {"status": "ok"}


def get_job(job_id: str, project_id: ProjectId, session: DB) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.project_id != project_id:
        raise HTTPException(404)
    return job


def submit(body: JobIn, project_id: ProjectId, session: DB) -> Job:
    job = Job(
        id=f"job_{uuid.uuid4().hex[:24]}", project_id=project_id, type=body.type,
        params=body.model_dump(exclude={"type"}), created_at=datetime.now(UTC),
    )  # fmt: skip
    session.add(job)
    session.flush()
    session.add(Outbox(job_id=job.id))
    session.commit()
    return job


def _wal(conn: Any, _: Any) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


def make_baseline() -> FastAPI:
    """The baseline app (uvicorn `--factory` target), its tables made and seeded."""
    url = os.environ["BENCH_BASELINE_DB"]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _wal)
    else:
        engine = create_engine(url, pool_size=20, max_overflow=20)
    Base.metadata.create_all(engine)
    SESSIONS[:] = [sessionmaker(engine, expire_on_commit=False)]
    with SESSIONS[0].begin() as session:
        digest = hashlib.sha256(os.environ["BENCH_KEY"].encode()).hexdigest()
        session.add(Key(key_hash=digest, project_id="prj_bench"))
        params = {"model_id": "m", "dataset_id": "d", "split": "test"}
        session.add(Job(id="job_bench", project_id="prj_bench", type="embed", params=params,
                        created_at=datetime.now(UTC)))  # fmt: skip
    app = FastAPI()
    app.get("/healthz")(healthz)
    app.get("/v1/jobs/{job_id}", response_model=JobOut)(get_job)
    app.post("/v1/jobs", response_model=JobOut, status_code=202)(submit)
    return app
