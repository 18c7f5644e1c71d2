"""`/v1/models`: register the base models to embed with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.basemodels import service
from app.basemodels.schemas import ModelCreate, ModelList, ModelRead
from app.deletion import CASCADE_DOC
from app.deps import CurrentPrincipal, SessionDep, SettingsDep, StorageDep, TransactionalRoute
from app.errors import problems
from app.models import BaseModel

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=TransactionalRoute)


def to_read(row: BaseModel) -> ModelRead:
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


@router.get("", response_model=ModelList, responses=problems())
def list_models(
    session: SessionDep,
    principal: CurrentPrincipal,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
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
    cascade: Annotated[bool, Query(description=CASCADE_DOC)] = False,
) -> Response:
    """Delete a model. One with results (fine-tuned models, evaluations, scores, predictors,
    embeddings) is refused with 409 counting them by kind (`dependents`), unless `cascade`."""
    service.delete_model(
        session=session, storage=storage, project_id=principal.project_id, model_id=model_id,
        cascade=cascade,
    )  # fmt: skip
    return Response(status_code=204)
