"""A background thread that runs the outbox relay, the reaper and the orphan sweep."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import session_scope, utcnow
from app.jobs.reaper import reap_once
from app.jobs.relay import relay_once, wait_for_wake
from app.models import OutboxEntry

log = logging.getLogger("iimm.maintenance")


def purge_published_outbox(session: Session, *, older_than_s: float) -> int:
    """Delete outbox rows published more than `older_than_s` seconds ago; returns how many
    (pending rows are never touched)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    res = session.execute(
        delete(OutboxEntry)
        .where(OutboxEntry.published_at.is_not(None), OutboxEntry.published_at <= cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


class Maintenance:
    """Relay (broker mode) every `relay_interval_s` or when woken; reaper and sweep less often;
    webhook deliveries in a thread of their own (a slow receiver never delays the relay)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        from app.webhooks.delivery import Sender

        self.factory, self.settings = factory, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="iimm-maintenance", daemon=True)
        self._last_reap = 0.0
        self._last_sweep = 0.0
        self.webhooks = Sender(factory, settings)

    def start(self) -> None:
        """Start the threads."""
        self._thread.start()
        self.webhooks.start()

    def stop(self) -> None:
        """Stop the threads and wait for them briefly."""
        self._stop.set()
        from app.jobs.relay import wake_relay

        wake_relay()
        self._thread.join(timeout=10)
        self.webhooks.stop()

    def tick(self) -> None:
        """One pass: publish the outbox; reap and sweep orphaned artifacts when due."""
        if self.settings.uses_broker:
            relay_once(self.factory, self.settings)
        if time.monotonic() - self._last_reap >= self.settings.reaper_interval_s:
            self._last_reap = time.monotonic()
            reap_once(self.factory, self.settings)
        if not self._last_sweep or (
            time.monotonic() - self._last_sweep >= self.settings.orphan_sweep_interval_s
        ):
            self._last_sweep = time.monotonic()
            self.sweep()

    def sweep(self) -> list[str]:
        """Purge old published outbox rows; remove orphaned artifacts
        (`app.deletion.sweep_orphans`) and return their keys."""
        from app.artifacts import Storage
        from app.deletion import sweep_orphans

        storage = Storage(self.settings.artifacts_url, cache_dir=self.settings.data_dir / "cache")
        with session_scope(self.factory) as session:
            purge_published_outbox(session, older_than_s=self.settings.outbox_retention_s)
        with session_scope(self.factory) as session:
            return sweep_orphans(session, storage, min_age_s=self.settings.orphan_min_age_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # the database may be restarting: try again later
                log.warning("maintenance pass failed: %s", exc)
            wait_for_wake(self.settings.relay_interval_s)
