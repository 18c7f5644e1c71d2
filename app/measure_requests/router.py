"""`POST /v1/measures`: synchronous for small inputs, a job above the size limit."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.db import new_id
from app.deps import CurrentPrincipal, SessionDep, SettingsDep, StorageDep
from app.errors import InvalidError, UnsupportedMediaTypeError, problems
from app.jobs import service as jobs_service
from app.jobs.router import to_read
from app.jobs.schemas import JobRead
from app.jobs.types import MeasuresParams
from app.limits import read_form
from app.measure_requests import service
from app.measure_requests.schemas import MeasuresRequest, MeasuresResult

router = APIRouter(prefix="/v1/measures", tags=["measures"])

BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": MeasuresRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary",
                                 "description": ".npz with images, texts, labels"},
                        "measures": {"type": "string", "description": "comma-separated names"},
                    },
                }
            },
        },
    }
}  # fmt: skip


async def _read(request: Request) -> tuple[dict[str, np.ndarray], list[str] | None]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            body = MeasuresRequest.model_validate(json.loads(await request.body()))
        except (ValueError, ValidationError) as exc:
            raise InvalidError(f"invalid measures request: {exc}") from None
        try:
            arrays = {k: np.asarray(getattr(body, k)) for k in service.KEYS}
        except ValueError:
            raise InvalidError("images and texts must be rectangular arrays of numbers") from None
        return arrays, body.measures
    if ctype == "multipart/form-data":
        form = await read_form(request, max_files=1, max_fields=3)
        file, names = form.get("file"), form.get("measures")
        if not isinstance(file, UploadFile):
            raise InvalidError("form field `file` must be an uploaded .npz file")
        arrays = await run_in_threadpool(service.load_npz, await file.read())
        wanted = (
            [n.strip() for n in names.split(",") if n.strip()] if isinstance(names, str) else None
        )
        return arrays, wanted or None
    raise UnsupportedMediaTypeError("send application/json arrays or a multipart .npz upload")


@router.post(
    "",
    response_model=MeasuresResult,
    responses={202: {"model": JobRead, "description": "Large input: a job"}, **problems(413, 415)},
    openapi_extra=BODY,
)
async def compute_measures(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    """Measures of embeddings you already have (images n×d, texts k×d, labels n).

    Up to `IIMM_MEASURES_SYNC_MAX_VALUES` numbers the answer comes at once (200); above it
    the arrays are stored and a job is returned (202, `Location`) whose result holds them.
    """
    arrays, names = await _read(request)
    n, k, d = service.check_arrays(arrays)
    if (n + k) * d <= settings.measures_sync_max_values:
        values = await run_in_threadpool(service.compute, arrays, names)
        return JSONResponse(MeasuresResult(measures=values, n=n, k=k, dim=d).model_dump())
    key = f"measures/{new_id('upl')}"
    await run_in_threadpool(_store, storage, key, arrays)
    params = MeasuresParams(artifact=key, measures=names)
    job, _ = await run_in_threadpool(
        lambda: jobs_service.create_job(
            session=session, project_id=principal.project_id, params=params,
            idempotency_key=None, max_attempts=settings.max_attempts,
            use_broker=settings.uses_broker,
        )
    )  # fmt: skip
    body = to_read(job).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _store(storage: Any, key: str, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    storage.fs.makedirs(storage.path(key), exist_ok=True)
    with storage.fs.open(storage.path(f"{key}/embeddings.npz"), "wb") as fh:
        fh.write(buf.getvalue())
