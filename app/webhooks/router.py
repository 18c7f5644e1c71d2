"""`/v1/webhooks`: endpoints that receive the project's job events, and their deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.deps import CurrentPrincipal, CursorQuery, LimitQuery, SessionDep, SettingsDep
from app.errors import problems
from app.models import WebhookEndpoint
from app.webhooks import service
from app.webhooks.schemas import (
    DeliveryList,
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookList,
    WebhookRead,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def to_read(row: WebhookEndpoint, *, secret: bool = False) -> WebhookRead:
    """An endpoint as returned by the API (the secret only when asked: at creation)."""
    return WebhookRead(
        id=row.id, url=row.url, event_types=row.event_types,  # type: ignore[arg-type]
        description=row.description, secret=row.secret if secret else None,
        created_at=row.created_at,
        links={"self": f"/v1/webhooks/{row.id}",
               "deliveries": f"/v1/webhooks/{row.id}/deliveries"},
    )  # fmt: skip


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookRead,
             responses=problems())  # fmt: skip
def create_webhook(
    body: WebhookCreate,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    response: Response,
) -> WebhookRead:
    """Register an endpoint for the project's job events (`job.queued`, `job.running`,
    `job.succeeded`, `job.failed`, `job.cancelled`).

    Each event is a POST of ``{"type", "timestamp", "data": {"id", "type", "status",
    "error", "links"}}`` signed as the Standard Webhooks specification says: headers
    `webhook-id` (the same on every retry), `webhook-timestamp` and `webhook-signature`
    (``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body`` with the returned `secret`).
    A 2xx answer delivers it; otherwise it is retried with exponential backoff. The URL
    must be http(s), on a host `IIMM_WEBHOOK_ALLOWED_HOSTS` allows (422 otherwise).
    """
    row = service.create_webhook(
        session=session, settings=settings, project_id=principal.project_id, body=body
    )
    response.headers["Location"] = f"/v1/webhooks/{row.id}"
    return to_read(row, secret=True)


@router.get("", response_model=WebhookList, responses=problems())
def list_webhooks(
    session: SessionDep,
    principal: CurrentPrincipal,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> WebhookList:
    """List the project's endpoints, newest first (secrets are not shown)."""
    rows, nxt = service.list_webhooks(
        session=session, project_id=principal.project_id, cursor=cursor, limit=limit
    )
    return WebhookList(items=[to_read(r) for r in rows], next_cursor=nxt)


@router.get("/{webhook_id}", response_model=WebhookRead, responses=problems(404))
def get_webhook(webhook_id: str, session: SessionDep, principal: CurrentPrincipal) -> WebhookRead:
    """One endpoint."""
    return to_read(
        service.get_webhook(session=session, project_id=principal.project_id, webhook_id=webhook_id)
    )


@router.delete("/{webhook_id}", status_code=204, responses=problems(404))
def delete_webhook(webhook_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Delete an endpoint; its pending deliveries are dropped."""
    service.delete_webhook(session=session, project_id=principal.project_id, webhook_id=webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList, responses=problems(404))
def list_webhook_deliveries(
    webhook_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[DeliveryStatus | None, Query(description="Only in this state")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> DeliveryList:
    """An endpoint's deliveries, newest first: status, attempts, the last answer or error."""
    rows, nxt = service.list_deliveries(
        session=session, project_id=principal.project_id, webhook_id=webhook_id,
        status=status.value if status else None, cursor=cursor, limit=limit,
    )  # fmt: skip
    return DeliveryList(items=[DeliveryRead.model_validate(r) for r in rows], next_cursor=nxt)
