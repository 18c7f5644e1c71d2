"""`create_app()`: the FastAPI application (never imports torch, open_clip or workers)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from app.artifacts import Storage
from app.auth.service import PrincipalCache
from app.config import Settings, settings_or_exit
from app.db import API_THREADS, make_engine, make_sessionmaker, session_scope
from app.deps import KnownQuery
from app.errors import install_error_handlers
from app.health.metrics import MetricsMiddleware, set_build_info
from app.limits import BodyLimitMiddleware
from app.openapi import TAGS, install_openapi, operation_id

log = logging.getLogger("iimm.api")

DESCRIPTION = """Predict what fine-tuning a vision-language model will bring, from the
Inter-Intra Modal Measure (IIMM). Register a base model and a dataset, run `embed` and
`score` jobs, read the measures. Authenticate with `Authorization: Bearer <API key>`.
Errors are `application/problem+json` (RFC 9457)."""


def prepare_database(settings: Settings) -> None:
    """Apply migrations and create the first admin key (embedded start-up, `iimm db upgrade`)."""
    from app.auth.service import ensure_bootstrap_key
    from app.migrate import upgrade

    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            ensure_bootstrap_key(session=session, settings=settings)
    finally:
        engine.dispose()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the engine, session factory and storage; run the relay/reaper thread."""
    settings: Settings = app.state.settings
    anyio.to_thread.current_default_thread_limiter().total_tokens = API_THREADS
    if settings.mode == "embedded":
        prepare_database(settings)
    engine = make_engine(settings.db_url)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    read_engine = make_engine(settings.db_url, read_only=True) if _is_sqlite(settings) else engine
    app.state.read_sessionmaker = make_sessionmaker(read_engine)
    app.state.storage = Storage.for_settings(settings)
    maintenance = None
    if settings.run_maintenance_in_api:
        from app.jobs.maintenance import Maintenance

        maintenance = Maintenance(app.state.sessionmaker, settings)
        maintenance.start()
    try:
        yield
    finally:
        if maintenance is not None:
            maintenance.stop()
        engine.dispose()
        read_engine.dispose()


def _is_sqlite(settings: Settings) -> bool:
    return settings.db_url.startswith("sqlite")


def _routers(app: FastAPI) -> None:
    from app.basemodels.router import router as models_router
    from app.comparisons.router import router as comparisons_router
    from app.dashboard.router import router as dashboard_router
    from app.datasets.router import router as datasets_router
    from app.finetuning.router import router as finetuning_router
    from app.health.router import router as health_router
    from app.jobs.router import router as jobs_router
    from app.matrices.router import router as matrices_router
    from app.measure_requests.router import router as measures_router
    from app.predictors.router import router as predictors_router
    from app.scores.router import router as scores_router
    from app.webhooks.router import router as webhooks_router

    for router in (
        datasets_router,
        models_router,
        jobs_router,
        scores_router,
        measures_router,
        finetuning_router,
        matrices_router,
        predictors_router,
        comparisons_router,
        webhooks_router,
    ):
        app.include_router(router, dependencies=[KnownQuery])
    app.include_router(health_router)
    app.include_router(dashboard_router)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API application for `settings` (default: from the environment)."""
    settings = settings or settings_or_exit("the API")
    set_build_info()
    app = FastAPI(
        title="IIMM service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.principals = PrincipalCache(settings.auth_cache_s)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        upload_limit=settings.max_upload_bytes,
        json_limit=settings.max_json_bytes,
    )
    _routers(app)
    return app
