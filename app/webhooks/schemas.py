"""Webhook schemas: endpoints (the secret shown once, at creation) and deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from app.models.jobs import JobStatus


class EventType(StrEnum):
    """A job's move to a status: ``job.<status>``."""

    job_queued = "job.queued"
    job_running = "job.running"
    job_succeeded = "job.succeeded"
    job_failed = "job.failed"
    job_cancelled = "job.cancelled"


EVENT_OF_STATUS = {JobStatus(e.value.removeprefix("job.")): e for e in EventType}


class WebhookCreate(BaseModel):
    """Register an endpoint: an http(s) URL and, optionally, the events it wants."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, examples=["https://ci.example.com/hooks/iimm"])
    event_types: list[EventType] = Field(
        default_factory=list, max_length=len(EventType),
        description="Events to send; empty (the default): every event.",
    )  # fmt: skip
    description: str | None = Field(default=None, max_length=500)


class WebhookRead(BaseModel):
    """An endpoint. `secret` (``whsec_`` + base64) is returned only when it is created: keep it
    to verify the `webhook-signature` header of each delivery."""

    id: str
    url: str
    event_types: list[EventType]
    description: str | None
    secret: str | None = Field(default=None, description="Only in the response to create.")
    created_at: datetime
    links: dict[str, str] = Field(default_factory=dict)


class WebhookList(BaseModel):
    """A page of endpoints, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[WebhookRead]
    next_cursor: str | None


class DeliveryStatus(StrEnum):
    """`pending` (not yet sent, or waiting for a retry), `succeeded` (a 2xx answer), `failed`
    (no 2xx after `IIMM_WEBHOOK_MAX_ATTEMPTS` attempts)."""

    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class DeliveryRead(BaseModel):
    """One event sent (or to be sent) to one endpoint; `id` is its `webhook-id` header."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    endpoint_id: str
    event_type: EventType
    job_id: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending).")
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    payload: dict = Field(description="The JSON body sent: `type`, `timestamp`, `data`.")


class DeliveryList(BaseModel):
    """A page of deliveries, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[DeliveryRead]
    next_cursor: str | None
