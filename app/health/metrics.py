"""Prometheus metrics: requests (middleware), and job gauges and histograms read from the
database (the truth, shared by every API replica, so each replica exports the same
cluster-wide values: aggregate them with `max`): queue depth and running jobs per queue,
always present for every known queue and job type (0 when idle), and running jobs per worker
(0 for a worker seen in the last `IIMM_METRICS_WORKER_WINDOW_S`; what an autoscaler such as
KEDA reads), run time and queue wait of jobs; the
artifact store's bytes and files by kind, as last measured by the maintenance pass
(`app.artifacts.usage`: a walk of the store is too slow for every scrape)."""

from __future__ import annotations

import time
from datetime import timedelta
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import utcnow
from app.jobs.registry import JOB_TYPES
from app.measures import kernel_info
from app.models import ArtifactUsage, Job, OutboxEntry
from app.models.jobs import JobStatus

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "iimm_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "iimm_http_request_seconds", "HTTP request latency", ["method", "route"], registry=REGISTRY
)
#: The job series are counted in the database, so every API replica exports the same,
#: cluster-wide value: aggregate them across scrape targets with `max`, never `sum`.
CLUSTER_WIDE = (
    "cluster-wide, from the database: every replica exports the same value (max, not sum)"
)
JOBS = Gauge(
    "iimm_jobs", f"Jobs by type and state; {CLUSTER_WIDE}", ["type", "status"], registry=REGISTRY
)
QUEUE_DEPTH = Gauge(
    "iimm_queue_depth", f"Queued jobs by queue; {CLUSTER_WIDE}", ["queue"], registry=REGISTRY
)
QUEUE_RUNNING = Gauge(
    "iimm_queue_running", f"Running jobs by queue; {CLUSTER_WIDE}", ["queue"], registry=REGISTRY
)
OUTBOX = Gauge("iimm_outbox_pending", "Outbox entries not yet published", registry=REGISTRY)
BUILD = Info("iimm_build", "Version and the measures' pass implementation", registry=REGISTRY)


def set_build_info() -> None:
    """Fill `iimm_build` (the measures' kernel depends on the settings: called by `create_app`
    once they are known to be valid, not at import)."""
    BUILD.info({"version": metadata.version("iimm-service"), "measures_kernel": kernel_info()})


RUNNING = Gauge(
    "iimm_jobs_running",
    "Running jobs by worker (the jobs' worker, host:pid); 0 for a worker that started or"
    " finished a job in the last IIMM_METRICS_WORKER_WINDOW_S (default 900 s), no sample for"
    f" one idle longer (or gone); {CLUSTER_WIDE}",
    ["worker"],
    registry=REGISTRY,
)
ARTIFACT_BYTES = Gauge(
    "iimm_artifact_bytes",
    "Bytes in the artifact store by kind (top-level prefix), as last measured",
    ["kind"],
    registry=REGISTRY,
)
ARTIFACT_FILES = Gauge(
    "iimm_artifact_files", "Files in the artifact store by kind, as last measured", ["kind"],
    registry=REGISTRY,
)  # fmt: skip
ARTIFACT_MEASURED = Gauge(
    "iimm_artifact_usage_timestamp_seconds",
    "When the artifact store was last measured (Unix time; absent before the first pass)",
    registry=REGISTRY,
)
#: Histogram buckets of job times, in seconds: from an empty job to a long fine-tune.
BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0)


class JobTimes(Collector):
    """Histograms of a job time column, from the database at each refresh (so they count
    every job, whichever worker or API replica saw it)."""

    def __init__(self, name: str, doc: str, column: str, label: str) -> None:
        self.name, self.doc, self.column, self.label = name, doc, column, label
        self.family = HistogramMetricFamily(name, doc, labels=[label])

    def refresh(self, session: Session) -> None:
        """Recount the buckets: jobs with the time recorded, by `label`."""
        value, key = getattr(Job, self.column), getattr(Job, self.label)
        counts = [func.sum(case((value <= b, 1), else_=0)) for b in BUCKETS]
        query = select(key, func.count(value), func.sum(value), *counts)
        family = HistogramMetricFamily(self.name, self.doc, labels=[self.label])
        for label, n, total, *cumulative in session.execute(
            query.where(value.is_not(None)).group_by(key)
        ):
            buckets = [(str(b), int(c or 0)) for b, c in zip(BUCKETS, cumulative, strict=True)]
            family.add_metric([label], [*buckets, ("+Inf", int(n))], sum_value=float(total or 0))
        self.family = family

    def collect(self) -> list[Metric]:
        return [self.family]


RUN_TIME = JobTimes(
    "iimm_job_run_seconds",
    f"Jobs' run_s: seconds each held a worker, all its runs, by type; {CLUSTER_WIDE}",
    "run_s",
    "type",
)
QUEUE_WAIT = JobTimes(
    "iimm_job_queue_wait_seconds",
    f"Jobs' queue_wait_s: seconds from the last (re)queueing to the last start, by queue;"
    f" {CLUSTER_WIDE}",
    "queue_wait_s",
    "queue",
)
REGISTRY.register(RUN_TIME)
REGISTRY.register(QUEUE_WAIT)


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
            path = _route_path(scope)
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            LATENCY.labels(scope["method"], path).observe(time.perf_counter() - start)


def _route_path(scope: Scope) -> str:
    """The template of the route that served `scope`: FastAPI's routes put themselves in the
    scope; Starlette's plain routes and mounts (`/openapi.json`, the docs' assets) do not, so
    they are matched again here. `unmatched` when nothing matches (a 404)."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        if isinstance(candidate, BaseRoute) and candidate.matches(scope)[0] is not Match.NONE:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


def refresh_job_gauges(session: Session, *, worker_window_s: float) -> None:
    """Set the job gauges from the database (the truth), across all projects.

    Every known job type × status, and every known queue, has a sample (0 when there are no
    such jobs), so sums over them are never empty when the service is idle. A worker has a
    running-jobs sample while it runs jobs and, at 0, for `worker_window_s` after it last
    started or finished one (workers have no heartbeat of their own: the job rows are what
    is known of them), so an idle worker reads 0 rather than "no data"."""
    JOBS.clear()
    for job_type in JOB_TYPES:
        for job_status in JobStatus:
            JOBS.labels(job_type.name, job_status.value).set(0)
    for type_, status, count in session.execute(
        select(Job.type, Job.status, func.count()).group_by(Job.type, Job.status)
    ):
        JOBS.labels(type_, status).set(count)
    for gauge, status in ((QUEUE_DEPTH, "queued"), (QUEUE_RUNNING, "running")):
        gauge.clear()
        for queue in sorted({t.queue for t in JOB_TYPES}):
            gauge.labels(queue).set(0)
        for queue, count in session.execute(
            select(Job.queue, func.count()).where(Job.status == status).group_by(Job.queue)
        ):
            gauge.labels(queue).set(count)
    RUNNING.clear()
    cutoff = utcnow() - timedelta(seconds=worker_window_s)
    for worker in session.scalars(
        select(Job.worker_id)
        .where(Job.worker_id.is_not(None), or_(Job.started_at >= cutoff, Job.finished_at >= cutoff))
        .distinct()
    ):
        RUNNING.labels(worker).set(0)
    for worker, count in session.execute(
        select(Job.worker_id, func.count()).where(Job.status == "running").group_by(Job.worker_id)
    ):
        RUNNING.labels(worker or "unknown").set(count)
    OUTBOX.set(
        session.scalar(
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.published_at.is_(None))
        )
        or 0
    )
    RUN_TIME.refresh(session)
    QUEUE_WAIT.refresh(session)


def refresh_artifact_gauges(session: Session) -> None:
    """Set the artifact gauges from the usage rows the maintenance pass wrote (no walk of
    the store here); no rows yet (no pass so far): no series."""
    ARTIFACT_BYTES.clear()
    ARTIFACT_FILES.clear()
    newest = None
    for row in session.scalars(select(ArtifactUsage)):
        ARTIFACT_BYTES.labels(row.kind).set(row.bytes)
        ARTIFACT_FILES.labels(row.kind).set(row.files)
        newest = max(newest or row.measured_at, row.measured_at)
    if newest is not None:
        ARTIFACT_MEASURED.set(newest.timestamp())
