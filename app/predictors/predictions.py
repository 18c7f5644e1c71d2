"""Predictions of a stored predictor: for a registered dataset's scores or for raw values."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from app.errors import ConflictError, InvalidError
from app.measures.prediction import fit_from_dict, implied_accuracy_interval, predict
from app.models.predictors import Predictor
from app.predictors import data
from app.predictors import service as predictors_service
from app.predictors.schemas import Interval, PredictionCreate, PredictionRead


def assess_request(model_id: str, dataset_id: str) -> str:
    """The exact request that scores a dataset and predicts for it."""
    body = {"type": "assess", "model_id": model_id, "dataset_id": dataset_id}
    return f"POST /v1/jobs {json.dumps(body)}"


def prediction_of(
    predictor: Predictor,
    *,
    x: float,
    acc_zs: float | None,
    level: float = 0.95,
    dataset_id: str | None = None,
) -> PredictionRead:
    """The predictor's target at feature value `x`, with the accuracy it implies for G."""
    fit = fit_from_dict(predictor.fit)
    try:
        pred = predict(fit, x, level=level)
        implied = None
        if predictor.target == "gain" and acc_zs is not None:
            implied = implied_accuracy_interval(acc_zs, pred)
    except ValueError as exc:
        raise InvalidError(f"cannot predict with predictor {predictor.id}: {exc}") from None
    out = pred.to_dict()
    return PredictionRead(
        predictor_id=predictor.id, method=predictor.method, feature=predictor.feature,
        target=predictor.target,  # type: ignore[arg-type]
        dataset_id=dataset_id, feature_value=x, zero_shot_accuracy=acc_zs,
        prediction=Interval(value=out["value"], lower=out["lower"], upper=out["upper"],
                            level=out["level"]),
        se=out["se"], df=pred.df, extrapolated=pred.extrapolated,
        finetuned_accuracy=None if implied is None else Interval(
            value=implied.value, lower=implied.lower, upper=implied.upper, level=implied.level),
    )  # fmt: skip


def feature_for_dataset(
    session: Session, *, project_id: str, predictor: Predictor, dataset_id: str
) -> tuple[float, float | None]:
    """(feature value, zero-shot accuracy) of a dataset; 409 with the request that scores it."""
    found = data.load_scores(
        session, project_id=project_id, model_id=predictor.base_model_id,
        dataset_ids=[dataset_id], split=predictor.split,
    ).get(dataset_id)  # fmt: skip
    request = assess_request(predictor.base_model_id, dataset_id)
    if found is None:
        raise ConflictError(
            f"dataset {dataset_id} has no zero-shot scores under base model "
            f"{predictor.base_model_id} yet: submit an assess job, {request}, and predict once "
            "it succeeds (its result already holds the predictions)"
        )
    if not found.has(predictor.feature):
        raise ConflictError(
            f"dataset {dataset_id} has no stored {predictor.feature!r} score: submit {request}"
        )
    x = found.value(predictor.feature)
    if x is None:
        raise InvalidError(
            f"{predictor.feature!r} is undefined (NaN) for dataset {dataset_id}; "
            "fit a predictor on another feature"
        )
    return x, found.zero_shot_accuracy


def create_prediction(
    *, session: Session, project_id: str, predictor_id: str, body: PredictionCreate
) -> PredictionRead:
    """Predict with a stored predictor for `body.dataset_id` or `body.feature_value`."""
    predictor = predictors_service.get_predictor(
        session=session, project_id=project_id, predictor_id=predictor_id
    )
    if body.dataset_id is not None:
        predictors_service.check_datasets(session, project_id, [body.dataset_id])
        x, acc = feature_for_dataset(
            session, project_id=project_id, predictor=predictor, dataset_id=body.dataset_id
        )
    else:
        assert body.feature_value is not None
        x, acc = body.feature_value, body.zero_shot_accuracy
        if acc is None and predictor.feature == data.ZERO_SHOT:
            acc = x
    return prediction_of(predictor, x=x, acc_zs=acc, level=body.level, dataset_id=body.dataset_id)
