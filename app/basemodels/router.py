"""`/v1/models`: register the base models to embed with."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.basemodels import service
from app.basemodels.schemas import ModelCreate, ModelList, ModelRead
from app.deletion import CASCADE_DOC
from app.deps import (
    MULTIPART,
    CurrentPrincipal,
    CursorQuery,
    LimitQuery,
    SessionDep,
    SettingsDep,
    StorageDep,
    TransactionalRoute,
    media_type,
)
from app.errors import InvalidError, problems
from app.limits import read_form
from app.models import PretrainedModel

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=TransactionalRoute)


def to_read(row: PretrainedModel) -> ModelRead:
    """A model as returned by the API, with its spec string."""
    return ModelRead(
        id=row.id, name=row.name, arch=row.arch, pretrained=row.pretrained, preset=row.preset,
        spec=service.spec_of(row), created_at=row.created_at,
    )  # fmt: skip


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ModelRead, responses=problems(403, 409)
)
def create_model(
    body: ModelCreate,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    response: Response,
) -> ModelRead:
    """Register a base model by preset or by open_clip architecture and pretrained weights.

    The spec is checked without loading weights; a missing checkpoint is reported when a job
    first loads the model.
    """
    read = to_read(
        service.create_model(
            session=session, settings=settings, project_id=principal.project_id, body=body
        )
    )
    response.headers["Location"] = f"/v1/models/{read.id}"
    return read


NAME_PATTERN = r"^[\w .@:/-]+$"
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "required": ["name", "architecture", "checkpoint"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 200,
                                 "pattern": NAME_PATTERN},
                        "architecture": {"type": "string", "format": "binary",
                                         "description": "open_clip model config (JSON)"},
                        "checkpoint": {"type": "string", "format": "binary",
                                       "description": "weights: .safetensors, or a "
                                       "torch.save state_dict (.pt)"},
                    },
                }
            }
        },
    }
}  # fmt: skip


@router.post(
    ":upload",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelRead,
    responses=problems(409, 413, 415),
    openapi_extra=UPLOAD_BODY,
    dependencies=[media_type(MULTIPART, hint="to register by spec, POST JSON to /v1/models")],
)
async def upload_model(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    response: Response,
) -> ModelRead:
    """Register a model from files the server cannot see: `name`, `architecture` (an
    open_clip config JSON) and `checkpoint` (safetensors, or a `torch.save` zip whose
    pickle holds only tensors and containers: one that would call anything else, e.g.
    `os.system`, is a 422). Both are streamed to the artifact store, each at most
    `IIMM_MAX_UPLOAD_BYTES`; workers load the weights with `weights_only=True`."""
    form = await read_form(
        request, fields=("name", "architecture", "checkpoint"), max_files=2, max_fields=4
    )
    name, arch, ckpt = form.get("name"), form.get("architecture"), form.get("checkpoint")
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or len(name) > 200:
        msg = f"required: a name of letters, digits and ' .@:/-' (pattern {NAME_PATTERN})"
        raise RequestValidationError([{"loc": ("body", "name"), "msg": msg, "type": "pattern"}])
    if not isinstance(arch, UploadFile) or not isinstance(ckpt, UploadFile):
        raise InvalidError("form fields `architecture` (JSON) and `checkpoint` must be files")
    row = await run_in_threadpool(
        lambda: service.upload_model(
            session=session, storage=storage, settings=settings,
            project_id=principal.project_id, name=name.strip(), architecture=arch.file,
            checkpoint=ckpt.file, checkpoint_name=ckpt.filename or "",
        )
    )  # fmt: skip
    response.headers["Location"] = f"/v1/models/{row.id}"
    return to_read(row)


@router.get("", response_model=ModelList, responses=problems())
def list_models(
    session: SessionDep,
    principal: CurrentPrincipal,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> ModelList:
    """List the project's models, newest first (cursor pagination)."""
    rows, nxt = service.list_models(
        session=session, project_id=principal.project_id, cursor=cursor, limit=limit
    )
    return ModelList(items=[to_read(r) for r in rows], next_cursor=nxt)


@router.get("/{model_id}", response_model=ModelRead, responses=problems(404))
def get_model(model_id: str, session: SessionDep, principal: CurrentPrincipal) -> ModelRead:
    """One model."""
    return to_read(
        service.get_model(session=session, project_id=principal.project_id, model_id=model_id)
    )


@router.delete("/{model_id}", status_code=204, responses=problems(404, 409))
def delete_model(
    model_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    storage: StorageDep,
    settings: SettingsDep,
    cascade: Annotated[bool, Query(description=CASCADE_DOC)] = False,
) -> Response:
    """Delete a model. One with results (fine-tuned models, evaluations, scores, predictors,
    embeddings) or jobs not final yet that name it (`active_jobs`: queued, running or
    waiting) is refused with 409 counting them by kind (`dependents`), unless `cascade`,
    which cancels those jobs and deletes the results in one transaction."""
    service.delete_model(
        session=session, storage=storage, project_id=principal.project_id, model_id=model_id,
        cascade=cascade, use_broker=settings.uses_broker,
    )  # fmt: skip
    return Response(status_code=204)
