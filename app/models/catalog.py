"""Registered datasets and base models."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, RecordMixin

#: The rows `uq_datasets_project_fingerprint` covers.
UNIQUE_CONTENT = text("status <> 'failed' AND NOT duplicate_allowed")


class Dataset(RecordMixin, Base):
    """An image-classification dataset, uploaded into storage or referenced by URI."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("ix_datasets_project_id_id", "project_id", "id"),
        # One dataset per content in a project, in the database itself: two ingest jobs of
        # the same content cannot both make theirs ready (`workers.tasks.ingest`). Failed
        # datasets and copies registered with `allow_duplicate` are not counted.
        Index(
            "uq_datasets_project_fingerprint",
            "project_id",
            "fingerprint",
            unique=True,
            sqlite_where=UNIQUE_CONTENT,
            postgresql_where=UNIQUE_CONTENT,
        ),
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
    #: Registered with `allow_duplicate`: may share its content with another dataset.
    duplicate_allowed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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
