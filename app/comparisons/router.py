"""`/v1/comparisons` and `/v1/rankings`: which measure predicts best, which model to pick."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.comparisons import service
from app.comparisons.schemas import ComparisonRead, RankBy, RankingRead
from app.deps import CurrentPrincipal, SessionDep, TransactionalRoute
from app.errors import problems
from app.finetuning.params import Method

router = APIRouter(prefix="/v1", route_class=TransactionalRoute)


@router.get(
    "/comparisons", tags=["comparisons"], response_model=ComparisonRead, responses=problems(404)
)
def compare_measures(
    session: SessionDep,
    principal: CurrentPrincipal,
    base_model_id: Annotated[str, Query(max_length=40)],
    method: Annotated[Method, Query(description="Fine-tuning method")],
) -> ComparisonRead:
    """Every stored measure (and the zero-shot accuracy) as a predictor of fine-tuning.

    Over the project's fine-tuned tasks of (base model, method): Spearman ρ and its p-value
    against G and against the fine-tuned accuracy, and R² (and slope p-value) of the linear
    fit of G on the measure; best |ρ vs G| first. Needs 3 fine-tuned tasks (422 otherwise).
    """
    return service.compare(
        session=session, project_id=principal.project_id, base_model_id=base_model_id,
        method=method,
    )  # fmt: skip


@router.get("/rankings", tags=["rankings"], response_model=RankingRead, responses=problems(404))
def rank_models(
    session: SessionDep,
    principal: CurrentPrincipal,
    dataset_id: Annotated[str, Query(max_length=40)],
    level: Annotated[float, Query(gt=0.0, lt=1.0)] = 0.95,
    by: Annotated[
        RankBy,
        Query(
            description="The gain predictor to rank by: `iimm`, `zero_shot` (zero-shot "
            "accuracy), or `best`: the measure the comparison of the base model and method "
            "ranks highest among its gain predictors (IIMM without a comparison)."
        ),
    ] = RankBy.best,
) -> RankingRead:
    """The project's base models and methods ordered by predicted fine-tuned accuracy.

    Each candidate uses its method's gain predictor picked by `by` (`ranked_by` says which
    and why) on the dataset's stored scores, with a prediction interval; the predictions of
    the gain predictors on zero-shot accuracy and on IIMM stand beside it, and the predicted
    out-of-domain change (forgetting). Models that cannot be ranked are listed with the reason.
    """
    return service.rank(
        session=session, project_id=principal.project_id, dataset_id=dataset_id, level=level,
        by=by,
    )  # fmt: skip
