"""Projects and the API keys scoped to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, RecordMixin, UTCDateTime


class Project(RecordMixin, Base):
    """A tenant: every other row belongs to exactly one project."""

    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(100), unique=True)


class ApiKey(RecordMixin, Base):
    """An API key, stored as its SHA-256 (keys are 256-bit random, so no slow hash needed)."""

    __tablename__ = "api_keys"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
