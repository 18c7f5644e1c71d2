"""Stored results: embeddings of a (model, dataset, split, prompts) and their measures; the
artifact store's usage by kind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, RecordMixin, UTCDateTime, utcnow


class Embedding(RecordMixin, Base):
    """Embeddings stored once per content key; every score reuses them."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("model_id", "dataset_id", "split", "prompts_hash"),)

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(40))
    prompts_hash: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(String(2000))
    n: Mapped[int] = mapped_column(Integer)
    k: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    zero_shot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)


class Score(RecordMixin, Base):
    """One measure of one (model, dataset, split), with its sample size and interval, and
    the prompts of the embeddings it was computed on (one row per measure and key: a score
    with other prompts replaces it only when the job asks to, `replace`)."""

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("model_id", "dataset_id", "split", "measure"),
        Index("ix_scores_project_id_id", "project_id", "id"),
    )

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(40))
    measure: Mapped[str] = mapped_column(String(60))
    value: Mapped[float | None] = mapped_column(Float, default=None)
    #: Why `value` is null (the measure is undefined on these data), else None.
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    #: What the value rests on that a reader should know (truncated prompts, tiny classes).
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    ci_low: Mapped[float | None] = mapped_column(Float, default=None)
    ci_high: Mapped[float | None] = mapped_column(Float, default=None)
    n: Mapped[int] = mapped_column(Integer)
    zero_shot_accuracy: Mapped[float | None] = mapped_column(Float, default=None)
    embedding_id: Mapped[str | None] = mapped_column(String(40), default=None)
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: The score job's `prompts` (templates or an ensemble's name; None: the default).
    prompts: Mapped[Any] = mapped_column(JSON, default=None, nullable=True)
    #: `app.imagedata.prompts.prompts_hash` of `prompts` (as on its `Embedding`).
    prompts_hash: Mapped[str] = mapped_column(
        String(64), default="default", server_default="default"
    )


class ArtifactUsage(Base):
    """Bytes and files under one top-level prefix (kind) of the artifact store, as last
    measured by the maintenance pass (`app.artifacts.usage`); `/metrics` reads these rows."""

    __tablename__ = "artifact_usage"

    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(BigInteger, default=0)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
