"""Fitted predictors: a target (G or the out-of-domain change) as a function of one measure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, RecordMixin, UTCDateTime


class Predictor(RecordMixin, Base):
    """One fit for (base model, fine-tuning method, feature, target) over fine-tuned tasks.

    `fit` is the numerical fit's `to_dict()`; `points` the (dataset, x, y) it was fitted on.
    """

    __tablename__ = "predictors"
    __table_args__ = (
        UniqueConstraint("project_id", "idempotency_key"),
        UniqueConstraint("project_id", "fit_key"),
        Index("ix_predictors_project_id_id", "project_id", "id"),
        Index("ix_predictors_base_model_id", "base_model_id"),
    )

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    base_model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(40))
    feature: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(20))
    split: Mapped[str] = mapped_column(String(40), default="test")
    piecewise: Mapped[str] = mapped_column(String(10), default="auto")
    kind: Mapped[str] = mapped_column(String(20))
    n: Mapped[int] = mapped_column(Integer)
    fit: Mapped[dict[str, Any]] = mapped_column(JSON)
    points: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # Hash of what determines the fit (see app.predictors.service.fit_key): one row per fit.
    fit_key: Mapped[str | None] = mapped_column(String(64), default=None)
    # Unused since staleness compares the stored points with those a refit would gather now
    # (app.predictors.service.check); kept so existing databases need no migration.
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
