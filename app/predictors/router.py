"""`/v1/predictors`: fit gain (or forgetting) against a zero-shot measure, and predict."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response, status

from app.deps import CurrentPrincipal, CursorQuery, LimitQuery, SessionDep, TransactionalRoute
from app.errors import problems
from app.finetuning.params import Method
from app.negotiation import SVG, text_response, wants
from app.predictors import figures, predictions, service
from app.predictors.schemas import (
    PredictionCreate,
    PredictionRead,
    PredictorCreate,
    PredictorList,
    PredictorRead,
    Target,
)

router = APIRouter(prefix="/v1/predictors", tags=["predictors"], route_class=TransactionalRoute)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PredictorRead,
    responses={200: {"model": PredictorRead, "description": "The same fit, stored earlier"}}
    | problems(404),
)
def create_predictor(
    body: PredictorCreate,
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> PredictorRead:
    """Fit a predictor now (fits are tiny) and store it.

    Points are the fine-tuned tasks of (base model, method) from the matrix: x = the feature's
    zero-shot score, y = G or the out-of-domain change. At least 3 tasks; fewer is a 422
    saying how many more fine-tuned tasks are needed. Constant or undefined features are 422.
    With `Idempotency-Key`, a repeated request with the same body returns the same predictor
    (`Idempotent-Replayed: true`); the same key with another body is a 422.
    A fit identical to a stored one (same base model, method, feature, target, split,
    piecewise choice and points) is that predictor: 200 with it instead of 201 with a new one.
    """
    row, how = service.create_predictor(
        session=session, project_id=principal.project_id, body=body,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    (read,) = service.read_all(session, principal.project_id, [row])
    response.headers["Location"] = f"/v1/predictors/{read.id}"
    if how == "replayed":
        response.headers["Idempotent-Replayed"] = "true"
    elif how == "existing":
        response.status_code = status.HTTP_200_OK
    return read


@router.get("", response_model=PredictorList, responses=problems())
def list_predictors(
    session: SessionDep,
    principal: CurrentPrincipal,
    base_model_id: Annotated[str | None, Query(max_length=40)] = None,
    method: Annotated[Method | None, Query(description="Fine-tuning method")] = None,
    target: Target | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> PredictorList:
    """List the project's predictors, newest first (cursor pagination), optionally filtered."""
    filters = {"base_model_id": base_model_id, "method": method, "target": target}
    rows, nxt = service.list_predictors(
        session=session, project_id=principal.project_id, filters=filters, cursor=cursor,
        limit=limit,
    )  # fmt: skip
    return PredictorList(
        items=service.read_all(session, principal.project_id, rows), next_cursor=nxt
    )


@router.get("/{predictor_id}", response_model=PredictorRead, responses=problems(404))
def get_predictor(
    predictor_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    # Content negotiation, not declared: the declared figure is `/{predictor_id}/svg`.
    format: Annotated[Literal["json", "svg"] | None, Query(include_in_schema=False)] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> PredictorRead | Response:
    """One predictor with its statistics and the points it was fitted on. Its figure is
    `GET /v1/predictors/{predictor_id}/svg` (this operation also answers `Accept:
    image/svg+xml` or `?format=svg` with it)."""
    row = service.get_predictor(
        session=session, project_id=principal.project_id, predictor_id=predictor_id
    )
    (read,) = service.read_all(session, principal.project_id, [row])
    if not wants(format, accept, "svg", SVG):
        return read
    return Response(figures.figure(session, principal.project_id, row, read), media_type=SVG)


@router.get(
    "/{predictor_id}/svg",
    response_class=Response,
    responses={**problems(404), **text_response(SVG, "The figure")},
)
def get_predictor_svg(
    predictor_id: str, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """A predictor's figure as SVG: the training tasks (feature against target) with the
    fitted line, its 95% prediction band and the fitted range."""
    row = service.get_predictor(
        session=session, project_id=principal.project_id, predictor_id=predictor_id
    )
    (read,) = service.read_all(session, principal.project_id, [row])
    return Response(figures.figure(session, principal.project_id, row, read), media_type=SVG)


@router.delete("/{predictor_id}", status_code=204, responses=problems(404))
def delete_predictor(
    predictor_id: str, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Delete a predictor."""
    service.delete_predictor(
        session=session, project_id=principal.project_id, predictor_id=predictor_id
    )
    return Response(status_code=204)


@router.post(
    "/{predictor_id}/predictions",
    response_model=PredictionRead,
    responses=problems(404, 409),
)
def create_prediction(
    predictor_id: str, body: PredictionCreate, session: SessionDep, principal: CurrentPrincipal
) -> PredictionRead:
    """Predict G (or the out-of-domain change) with a prediction interval.

    Send `{"dataset_id"}` to use the dataset's stored zero-shot scores, or
    `{"feature_value", "zero_shot_accuracy"}` for raw values. For G the implied fine-tuned
    accuracy `acc_zs + G·(1 − acc_zs)`, clipped to [0, 1], comes with it; `extrapolated` is
    true outside the fitted range. A dataset not scored yet is a 409 naming the `assess`
    job to submit.
    """
    return predictions.create_prediction(
        session=session, project_id=principal.project_id, predictor_id=predictor_id, body=body
    )
