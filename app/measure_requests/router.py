"""`POST /v1/measures` (JSON) and `:upload` (.npz): synchronous when small, else a job."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.artifacts import Storage
from app.auth.service import Principal
from app.config import Settings
from app.db import new_id, on_rollback
from app.deps import (
    JSON,
    MULTIPART,
    CurrentPrincipal,
    SessionDep,
    SettingsDep,
    StorageDep,
    TransactionalRoute,
    media_type,
)
from app.errors import InvalidError, problems
from app.jobs import service as jobs_service
from app.jobs.router import to_read
from app.jobs.schemas import JobRead
from app.jobs.types import MeasuresParams
from app.limits import read_form
from app.measure_requests import service
from app.measure_requests.schemas import VARIANT_NAMES, MeasuresRequest, MeasuresResult

router = APIRouter(prefix="/v1/measures", tags=["measures"], route_class=TransactionalRoute)

NPZ_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary",
                                 "description": ".npz with images, texts, labels"},
                        "measures": {"type": "string", "description": "comma-separated names"},
                        "variant": {"type": "string", "enum": list(VARIANT_NAMES),
                                    "default": "definition",
                                    "description": "how the baselines are computed"},
                    },
                }
            },
        },
    }
}  # fmt: skip
RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": JobRead, "description": "Large input: a `measures` job (`Location`)"},
    **problems(413, 415),
}


async def _npz_form(
    request: Request,
) -> tuple[dict[str, np.ndarray], list[str] | None, str]:
    form = await read_form(
        request, fields=("file", "measures", "variant"), max_files=1, max_fields=4
    )
    file, names = form.get("file"), form.get("measures")
    variant = service.check_variant(form.get("variant"))
    if not isinstance(file, UploadFile):
        raise InvalidError("form field `file` must be an uploaded .npz file")
    arrays = await run_in_threadpool(service.load_npz, await file.read())
    wanted = [n.strip() for n in names.split(",") if n.strip()] if isinstance(names, str) else None
    return arrays, wanted or None, variant


@router.post(
    "",
    response_model=MeasuresResult,
    responses=RESPONSES,
    dependencies=[media_type(JSON, hint="to upload an .npz, POST multipart to :upload")],
)
def compute_measures(
    body: MeasuresRequest,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    """Measures of embeddings you already have, as JSON arrays (images n×d, texts k×d, labels n).

    Up to `IIMM_MEASURES_SYNC_MAX_VALUES` numbers the answer comes at once (200); above it
    the arrays are stored and a job is returned (202, `Location`) whose result holds them.
    """
    try:
        arrays = {k: np.asarray(getattr(body, k)) for k in service.KEYS}
    except ValueError:
        raise InvalidError("images and texts must be rectangular arrays of numbers") from None
    return _answer(arrays, body.measures, body.variant, session, principal, settings, storage)


@router.post(
    ":upload",
    response_model=MeasuresResult,
    responses=RESPONSES,
    openapi_extra=NPZ_BODY,
    dependencies=[media_type(MULTIPART, hint="to send JSON arrays, POST to /v1/measures")],
)
async def compute_measures_npz(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    """Measures of embeddings you already have, as an uploaded `.npz` (`images`, `texts`, `labels`).

    Same answers as `POST /v1/measures`: 200 with the measures, or 202 with a job for
    large inputs.
    """
    arrays, names, variant = await _npz_form(request)
    return await run_in_threadpool(
        _answer, arrays, names, variant, session, principal, settings, storage
    )


def _answer(
    arrays: dict[str, np.ndarray],
    names: list[str] | None,
    variant: str,
    session: Session,
    principal: Principal,
    settings: Settings,
    storage: Storage,
) -> Response:
    n, k, d = service.check_arrays(arrays)
    if (n + k) * d <= settings.measures_sync_max_values:
        values, reasons = service.compute(arrays, names, variant)
        result = MeasuresResult(
            measures=values,
            reasons=reasons,
            variant=variant,
            n=n,
            k=k,
            dim=d,  # type: ignore[arg-type]
        )
        return JSONResponse(result.model_dump())
    key = f"measures/{new_id('upl')}"
    _store(storage, key, arrays)
    on_rollback(session, lambda: storage.delete(key))  # kept after the job: see app.deletion
    params = MeasuresParams(artifact=key, measures=names, variant=variant)  # type: ignore[arg-type]
    job, _ = jobs_service.create_job(
        session=session, project_id=principal.project_id, params=params, idempotency_key=None,
        max_attempts=settings.max_attempts, use_broker=settings.uses_broker,
    )  # fmt: skip
    body = to_read(job).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _store(storage: Any, key: str, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    storage.fs.makedirs(storage.path(key), exist_ok=True)
    with storage.fs.open(storage.path(f"{key}/embeddings.npz"), "wb") as fh:
        fh.write(buf.getvalue())
