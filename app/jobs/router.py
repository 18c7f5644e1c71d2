"""`/v1/jobs`: submit, read, list and cancel long-running work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response, status

from app.deps import (
    CurrentPrincipal,
    CursorQuery,
    LimitQuery,
    SessionDep,
    SettingsDep,
    StorageDep,
    TransactionalRoute,
)
from app.errors import problems
from app.jobs import service
from app.jobs.schemas import JobCreate, JobList, JobRead
from app.models import Job, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=TransactionalRoute)

EMBED_EXAMPLE = {
    "summary": "Embed the test split of a dataset",
    "value": {
        "type": "embed",
        "model_id": "mdl_0193...",
        "dataset_id": "dst_0193...",
        "split": "test",
    },
}
SCORE_EXAMPLE = {
    "summary": "Score stored embeddings",
    "value": {
        "type": "score",
        "model_id": "mdl_0193...",
        "dataset_id": "dst_0193...",
        "split": "test",
    },
}


def to_read(job: Job) -> JobRead:
    """A job as returned by the API."""
    read = JobRead.model_validate(job)
    read.links = service.links(job)
    return read


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(404, 409),
)
def create_job(
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    response: Response,
    body: Annotated[
        JobCreate, Body(openapi_examples={"embed": EMBED_EXAMPLE, "score": SCORE_EXAMPLE})
    ],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobRead:
    """Submit a job; returns 202 with the job and `Location: /v1/jobs/{id}`.

    With `Idempotency-Key`, a repeated request with the same body returns the same job; the
    same key with another body is rejected with 422. The job is stored before the broker is
    told, so it runs even if the broker is down at submission.

    A `score` job whose model, dataset and split already have scores computed with other
    `prompts` is refused with 409 naming one (`score_id`, its `prompts`, `prompts_hash`)
    unless it says `"replace": true`; with the same prompts it recomputes them in place.
    """

    job, created = service.create_job(
        session=session,
        project_id=principal.project_id,
        params=body,
        idempotency_key=idempotency_key,
        max_attempts=settings.max_attempts,
        use_broker=settings.uses_broker,
    )
    read = to_read(job)
    response.headers["Location"] = f"/v1/jobs/{read.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return read


@router.get("", response_model=JobList, responses=problems())
def list_jobs(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state")] = None,
    parent_id: Annotated[
        str | None, Query(max_length=40, description="Only the child jobs of this job")
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> JobList:
    """List the project's jobs, newest first, optionally only those in one `status` or the
    children of one job (`parent_id`: e.g. the grid points of a `finetune` job)."""
    rows, next_cursor = service.list_jobs(
        session=session,
        project_id=principal.project_id,
        status=status.value if status else None,
        parent_id=parent_id,
        cursor=cursor,
        limit=limit,
    )
    return JobList(items=[to_read(j) for j in rows], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobRead, responses=problems(404))
def get_job(job_id: str, session: SessionDep, principal: CurrentPrincipal) -> JobRead:
    """One job: status, progress (0..1), stage, attempts, error and links to its results."""
    return to_read(service.get_job(session=session, project_id=principal.project_id, job_id=job_id))


@router.post("/{job_id}:cancel", response_model=JobRead, responses=problems(404, 409))
def cancel_job(
    job_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
) -> JobRead:
    """Cancel a job and its child jobs: queued and waiting ones stop at once, running ones
    at their next heartbeat. A cancelled fine-tune's checkpoints are removed."""
    return to_read(
        service.cancel_job(
            session=session, project_id=principal.project_id, job_id=job_id,
            use_broker=settings.uses_broker, storage=storage,
        )
    )  # fmt: skip
