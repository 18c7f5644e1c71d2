"""`/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.db import session_scope
from app.health.metrics import REGISTRY, refresh_artifact_gauges, refresh_job_gauges

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Process liveness."""

    status: str


class Readiness(BaseModel):
    """Reachability of each dependency: `ok` or the error."""

    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
async def get_health() -> Health:
    """The process is alive (no dependency is checked)."""
    return Health(status="ok")


def _check(fn: Any) -> str:
    try:
        fn()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {str(exc)[:200]}"
    return "ok"


def _readiness(request: Request) -> dict[str, str]:
    state = request.app.state

    def database() -> None:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    checks = {"database": _check(database), "storage": _check(state.storage.ping)}
    if state.settings.uses_broker:
        from app.jobs.broker import ping

        checks["broker"] = _check(lambda: ping(state.settings))
    return checks


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def get_readiness(request: Request) -> JSONResponse:
    """Ready when the database, the broker (production) and the storage are reachable."""
    checks = _readiness(request)
    ok = all(v == "ok" for v in checks.values())
    body = Readiness(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def _metrics(request: Request) -> bytes:
    try:
        with session_scope(request.app.state.read_sessionmaker) as session:
            refresh_job_gauges(
                session, worker_window_s=request.app.state.settings.metrics_worker_window_s
            )
            refresh_artifact_gauges(session)
    except Exception:  # the database is down: still serve the request metrics
        pass
    return generate_latest(REGISTRY)


@router.get("/metrics", response_class=PlainTextResponse)
def get_metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics: requests, job counts by state, job durations, queue depth, and
    artifact bytes by kind (as last measured by the maintenance pass)."""
    body = _metrics(request)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
