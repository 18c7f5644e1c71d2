"""Sending webhook deliveries: signed (Standard Webhooks, via the `standardwebhooks`
package), at least once, retried with exponential backoff, never from a request handler.

A `Sender` thread (started with the relay and reaper, `app.jobs.maintenance`) claims due
deliveries (a short lease on `next_attempt_at`, so several senders never send the same
row at once), posts them outside any transaction and records the outcome.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from app.config import Settings
from app.db import session_scope, utcnow
from app.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.events import wait_for_wake

log = logging.getLogger("iimm.webhooks")
MAX_DELAY_S = 3600.0


@dataclass(frozen=True)
class _Due:
    id: str
    url: str
    secret: str
    payload: dict
    attempts: int


def backoff_s(settings: Settings, attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: base·2^(attempts-1), ≤ 1 h."""
    return min(settings.webhook_retry_base_s * 2 ** max(0, attempts - 1), MAX_DELAY_S)


def signed_headers(secret: str, msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of `body` (`webhook-signature`: ``v1,<base64 HMAC-SHA256
    of "id.timestamp.body">``)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }


def _claim(factory: sessionmaker[Session], settings: Settings, batch: int) -> list[_Due]:
    """Due pending deliveries, each leased (next_attempt_at moved past a send's timeout)."""
    now = utcnow()
    lease = now + timedelta(seconds=2 * settings.webhook_timeout_s + 5)
    with session_scope(factory) as session:
        query = (
            select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(batch)
        )
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
        due = []
        for row, url, secret in session.execute(query).all():
            row.next_attempt_at = lease
            due.append(_Due(row.id, url, secret, dict(row.payload), row.attempts))
    return due


def _send(client: httpx.Client, due: _Due) -> tuple[int | None, str | None]:
    """(HTTP status, error): a 2xx answer is a success; anything else is retried."""
    body = json.dumps(due.payload, separators=(",", ":"))
    try:
        resp = client.post(due.url, content=body, headers=signed_headers(
            due.secret, due.id, body, utcnow()))  # fmt: skip
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:1000]
    if 200 <= resp.status_code < 300:
        return resp.status_code, None
    return resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}"


def _record(factory: sessionmaker[Session], settings: Settings, due: _Due,
            code: int | None, error: str | None) -> None:  # fmt: skip
    attempts, now = due.attempts + 1, utcnow()
    values: dict = {"attempts": attempts, "last_status_code": code, "last_error": error}
    if error is None:
        values |= {"status": "succeeded", "delivered_at": now}
    elif attempts >= settings.webhook_max_attempts:
        values |= {"status": "failed"}
    else:
        values |= {"next_attempt_at": now + timedelta(seconds=backoff_s(settings, attempts))}
    with session_scope(factory) as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == due.id, WebhookDelivery.status == "pending")
            .values(**values)
        )


def deliver_once(
    factory: sessionmaker[Session], settings: Settings, client: httpx.Client, batch: int = 50
) -> int:
    """Send the due deliveries once; returns how many succeeded."""
    ok = 0
    for due in _claim(factory, settings, batch):
        code, error = _send(client, due)
        if error is not None:
            log.info("webhook %s to %s failed (attempt %d): %s", due.id, due.url,
                     due.attempts + 1, error)  # fmt: skip
        _record(factory, settings, due, code, error)
        ok += error is None
    return ok


class Sender:
    """The delivery thread: a pass every `webhook_interval_s`, or at once when woken."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory, self.settings = factory, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="iimm-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def once(self) -> int:
        """One pass in the calling thread (`iimm maintenance --once`); how many succeeded."""
        with httpx.Client(timeout=self.settings.webhook_timeout_s) as client:
            return deliver_once(self.factory, self.settings, client)

    def stop(self) -> None:
        from app.webhooks.events import wake_sender

        self._stop.set()
        wake_sender()
        self._thread.join(timeout=2 * self.settings.webhook_timeout_s)

    def _loop(self) -> None:
        timeout = httpx.Timeout(self.settings.webhook_timeout_s)
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    deliver_once(self.factory, self.settings, client)
                except Exception as exc:  # the database may be restarting: try again later
                    log.warning("webhook pass failed: %s", exc)
                wait_for_wake(self.settings.webhook_interval_s)
