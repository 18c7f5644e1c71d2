"""A background thread that runs the outbox relay, the reaper, the orphan and retention sweep
and the measurement of the artifact store's usage."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import Storage
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
    """Relay (broker mode) every `relay_interval_s` or when woken, and the reaper less often;
    the sweep and the usage measurement (walks of the store) in a thread of their own, and
    webhook deliveries in another (neither a large store nor a slow receiver delays the
    relay)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        from app.webhooks.delivery import Sender

        self.factory, self.settings = factory, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="iimm-maintenance", daemon=True)
        self._housekeeper = threading.Thread(
            target=self._housekeeping_loop, name="iimm-housekeeping", daemon=True
        )
        self._last_reap = 0.0
        self._last_sweep = 0.0
        self._last_usage = 0.0
        self.webhooks = Sender(factory, settings)

    def start(self) -> None:
        """Start the threads."""
        self._thread.start()
        self._housekeeper.start()
        self.webhooks.start()

    def stop(self) -> None:
        """Stop the threads and wait for them briefly."""
        self._stop.set()
        from app.jobs.relay import wake_relay

        wake_relay()
        self._thread.join(timeout=10)
        self._housekeeper.join(timeout=10)
        self.webhooks.stop()

    def tick(self, housekeeping: bool = True) -> None:
        """One pass: publish the outbox; reap when due; with `housekeeping`, also
        `housekeep`."""
        if self.settings.uses_broker:
            relay_once(self.factory, self.settings)
        if time.monotonic() - self._last_reap >= self.settings.reaper_interval_s:
            self._last_reap = time.monotonic()
            reap_once(self.factory, self.settings)
        if housekeeping:
            self.housekeep()

    def housekeep(self) -> None:
        """Sweep orphaned and expired artifacts, and measure the store's usage, each when
        due (both at the first call)."""
        if not self._last_sweep or (
            time.monotonic() - self._last_sweep >= self.settings.orphan_sweep_interval_s
        ):
            self._last_sweep = time.monotonic()
            self.sweep()
            self._last_usage = 0.0  # the sweep changed what is stored: measure now
        if not self._last_usage or (
            time.monotonic() - self._last_usage >= self.settings.artifact_usage_interval_s
        ):
            self._last_usage = time.monotonic()
            self.measure_usage()

    def storage(self) -> Storage:
        """The artifact store of these settings."""
        return Storage.for_settings(self.settings)

    def sweep(self) -> list[str]:
        """Purge old published outbox rows; remove orphaned artifacts and those of jobs
        finished longer than `job_files_retention_s` ago (`app.deletion.sweep_orphans`), and
        stale upload working folders of this process's data directory and the working
        folders of job attempts that are over; prune that directory's cache of remote
        artifacts (`app.artifacts.cache`); returns the keys of the removed artifacts."""
        from app.deletion import sweep_job_folders, sweep_orphans, sweep_temp_folders

        s = self.settings
        with session_scope(self.factory) as session:
            purge_published_outbox(session, older_than_s=s.outbox_retention_s)
        with session_scope(self.factory) as session:
            removed = sweep_orphans(
                session, self.storage(), min_age_s=s.orphan_min_age_s,
                job_files_retention_s=s.job_files_retention_s,
            )  # fmt: skip
        sweep_temp_folders(s.data_dir, min_age_s=s.orphan_min_age_s)
        with session_scope(self.factory) as session:
            sweep_job_folders(session, s.data_dir)
        self.storage().cache.prune(check_sources=True)  # this data directory's copies
        return removed

    def measure_usage(self) -> dict[str, tuple[int, int]]:
        """Walk the artifact store and store its bytes and files by kind for `/metrics`."""
        from app.artifacts.usage import measure_usage, record_usage

        usage = measure_usage(self.storage())
        with session_scope(self.factory) as session:
            record_usage(session, usage)
        return usage

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(housekeeping=False)
            except Exception as exc:  # the database may be restarting: try again later
                log.warning("maintenance pass failed: %s", exc)
            wait_for_wake(self.settings.relay_interval_s)

    def _housekeeping_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.housekeep()
            except Exception as exc:  # the database or the store may be away: try later
                log.warning("housekeeping pass failed: %s", exc)
            self._stop.wait(1.0)
