"""Registered datasets and base models."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, RecordMixin


class Dataset(RecordMixin, Base):
    """An image-classification dataset, uploaded into storage or referenced by URI."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("ix_datasets_project_id_id", "project_id", "id"),
    )

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    #: `validating` (its ingest job runs), `ready`, `registered` (never read yet) or `failed`.
    status: Mapped[str] = mapped_column(String(20), default="ready")
    format: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))  # "upload" or "uri"
    uri: Mapped[str] = mapped_column(String(2000))
    class_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    splits: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Files of the upload not used, by reason: [{reason, description, count, examples}].
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: What a user should know about the data: [{code, detail, items}].
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: The `ingest` job that extracts, checks and decodes it (None: registered before them).
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: Why it failed, as an RFC 9457 problem (type, title, status, detail); None unless failed.
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class PretrainedModel(RecordMixin, Base):
    """A pre-trained vision-language model (the paper's base model): an open_clip architecture
    with its pretrained weights; table ``base_models``."""

    __tablename__ = "base_models"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("ix_base_models_project_id_id", "project_id", "id"),
    )

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    arch: Mapped[str] = mapped_column(String(500))
    pretrained: Mapped[str | None] = mapped_column(String(500), default=None)
    preset: Mapped[str | None] = mapped_column(String(50), default=None)
