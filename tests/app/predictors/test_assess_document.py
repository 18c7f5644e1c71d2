"""The per-method part of the `assess` document (`app.predictors.assess._per_method`) on
hand-made predictions: the zero-shot-accuracy predictor's entry carries the fine-tuned
accuracy it implies, beside the headline predictor's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from app.predictors.schemas import Interval, PredictionRead


def _prediction(pid: str, feature: str, gain: float, accuracy: float) -> PredictionRead:
    return PredictionRead(
        predictor_id=pid, method="full", feature=feature, target="gain", dataset_id="dst_1",
        feature_value=0.3, zero_shot_accuracy=0.5, se=0.1, df=3, extrapolated=feature == "iimm",
        prediction=Interval(value=gain, lower=gain - 0.2, upper=gain + 0.2, level=0.95),
        finetuned_accuracy=Interval(value=accuracy, lower=0.4, upper=0.9, level=0.95),
    )  # fmt: skip


def test_zero_shot_baseline_carries_its_implied_finetuned_accuracy() -> None:
    from app.predictors.assess import _per_method

    iimm: Any = SimpleNamespace(id="prd_2", feature="iimm")
    zs: Any = SimpleNamespace(id="prd_1", feature="zero_shot_accuracy")
    done = {"prd_2": _prediction("prd_2", "iimm", 0.4, 0.7),
            "prd_1": _prediction("prd_1", "zero_shot_accuracy", 0.2, 0.6)}  # fmt: skip
    entry = _per_method({("full", "gain"): iimm}, done, {("full", "gain"): zs})["full"]
    beside = entry["gain_from_zero_shot_accuracy"]
    assert beside["predictor_id"] == "prd_1" and beside["prediction"]["value"] == 0.2
    assert beside["finetuned_accuracy"]["value"] == 0.6 and beside["extrapolated"] is False
    assert entry["finetuned_accuracy"]["value"] == 0.7 and entry["gain"]["extrapolated"] is True
    assert "finetuned_accuracy" not in entry["gain"]
