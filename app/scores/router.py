"""`/v1/scores`: the measures computed by score jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from app.deps import CurrentPrincipal, CursorQuery, SessionDep, TransactionalRoute
from app.errors import problems
from app.models import Score
from app.pagination import page
from app.scores.schemas import ScoreList, ScoreRead

router = APIRouter(prefix="/v1/scores", tags=["scores"], route_class=TransactionalRoute)


@router.get("", response_model=ScoreList, responses=problems())
def list_scores(
    session: SessionDep,
    principal: CurrentPrincipal,
    model_id: Annotated[str | None, Query(max_length=40)] = None,
    dataset_id: Annotated[
        str | None, Query(max_length=40, description="Only the scores of this dataset (`dst_…`)")
    ] = None,
    split: Annotated[str | None, Query(max_length=40)] = None,
    measure: Annotated[str | None, Query(max_length=60)] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ScoreList:
    """Stored measures of the project, filtered by model, dataset, split and measure name."""
    query = select(Score).where(Score.project_id == principal.project_id)
    for column, value in (
        (Score.model_id, model_id),
        (Score.dataset_id, dataset_id),
        (Score.split, split),
        (Score.measure, measure),
    ):
        if value is not None:
            query = query.where(column == value)
    rows, nxt = page(session, query, Score.id, cursor, limit, newest_first=False)
    return ScoreList(items=[ScoreRead.model_validate(r) for r in rows], next_cursor=nxt)
