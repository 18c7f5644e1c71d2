"""Prometheus metrics: requests (middleware), and job gauges read from the database."""

from __future__ import annotations

import time
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.measures import kernel_info
from app.models import Job, OutboxEntry

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "iimm_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "iimm_http_request_seconds", "HTTP request latency", ["method", "route"], registry=REGISTRY
)
JOBS = Gauge("iimm_jobs", "Jobs by type and state", ["type", "status"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("iimm_queue_depth", "Queued jobs by queue", ["queue"], registry=REGISTRY)
OUTBOX = Gauge("iimm_outbox_pending", "Outbox entries not yet published", registry=REGISTRY)
BUILD = Info("iimm_build", "Version and the measures' pass implementation", registry=REGISTRY)
BUILD.info({"version": metadata.version("iimm-service"), "measures_kernel": kernel_info()})
DURATION = Gauge(
    "iimm_job_duration_seconds_avg",
    "Mean run time of succeeded jobs by type",
    ["type"],
    registry=REGISTRY,
)


class MetricsMiddleware:
    """Counts requests and their latency by route template (not raw path: bounded labels).

    Pure ASGI: it only watches the response's start message, so bodies stream through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            LATENCY.labels(scope["method"], path).observe(time.perf_counter() - start)


def refresh_job_gauges(session: Session) -> None:
    """Set the job gauges from the database (the truth), across all projects."""
    JOBS.clear()
    for type_, status, count in session.execute(
        select(Job.type, Job.status, func.count()).group_by(Job.type, Job.status)
    ):
        JOBS.labels(type_, status).set(count)
    QUEUE_DEPTH.clear()
    for queue, count in session.execute(
        select(Job.queue, func.count()).where(Job.status == "queued").group_by(Job.queue)
    ):
        QUEUE_DEPTH.labels(queue).set(count)
    OUTBOX.set(
        session.scalar(
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.published_at.is_(None))
        )
        or 0
    )
    _durations(session)


def _durations(session: Session) -> None:
    rows = session.execute(
        select(Job.type, Job.started_at, Job.finished_at)
        .where(Job.status == "succeeded", Job.finished_at.is_not(None))
        .order_by(Job.id.desc())
        .limit(1000)
    )
    total: dict[str, list[float]] = {}
    for type_, started, finished in rows:
        if started and finished:
            total.setdefault(type_, []).append((finished - started).total_seconds())
    for type_, values in total.items():
        DURATION.labels(type_).set(sum(values) / len(values))
