"""Webhook endpoint service: register (URL checked, secret made), list, get, delete, and the
deliveries of an endpoint. Flushes only."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import new_id
from app.errors import InvalidError
from app.models import WebhookDelivery, WebhookEndpoint
from app.ownership import get_owned
from app.pagination import page
from app.webhooks.schemas import WebhookCreate


def check_url(url: str, settings: Settings) -> str:
    """422 unless `url` is an absolute http(s) URL whose host `IIMM_WEBHOOK_ALLOWED_HOSTS`
    allows (any host when that list is empty)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidError(f"url must be an absolute http:// or https:// URL, not {url!r}")
    if parts.username or parts.password:
        raise InvalidError("url must not carry credentials; verify the signature instead")
    allowed = [h.lower() for h in settings.webhook_allowed_hosts]
    if allowed and parts.hostname.lower() not in allowed:
        raise InvalidError(
            f"host {parts.hostname!r} is not allowed for webhooks; allowed hosts "
            f"(IIMM_WEBHOOK_ALLOWED_HOSTS): {allowed}"
        )
    return url


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create_webhook(
    *, session: Session, settings: Settings, project_id: str, body: WebhookCreate
) -> WebhookEndpoint:
    """Register an endpoint with a new secret."""
    row = WebhookEndpoint(
        id=new_id("whk"), project_id=project_id, url=check_url(body.url, settings),
        secret=new_secret(), event_types=sorted({e.value for e in body.event_types}),
        description=body.description,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def get_webhook(*, session: Session, project_id: str, webhook_id: str) -> WebhookEndpoint:
    """The caller's endpoint (404 for other projects' ids)."""
    return get_owned(session, WebhookEndpoint, webhook_id, project_id, "webhook")


def list_webhooks(
    *, session: Session, project_id: str, cursor: str | None, limit: int
) -> tuple[list[WebhookEndpoint], str | None]:
    """A page of the caller's endpoints, newest first."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id)
    return page(session, query, WebhookEndpoint.id, cursor, limit)


def delete_webhook(*, session: Session, project_id: str, webhook_id: str) -> None:
    """Delete an endpoint and its deliveries (pending ones are not sent)."""
    session.delete(get_webhook(session=session, project_id=project_id, webhook_id=webhook_id))
    session.flush()


def list_deliveries(
    *, session: Session, project_id: str, webhook_id: str, status: str | None,
    cursor: str | None, limit: int,
) -> tuple[list[WebhookDelivery], str | None]:  # fmt: skip
    """A page of an endpoint's deliveries, newest first, optionally in one status."""
    get_webhook(session=session, project_id=project_id, webhook_id=webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == webhook_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return page(session, query, WebhookDelivery.id, cursor, limit)
