"""A refused delete lists its dependents in words, singular or plural by count."""

from __future__ import annotations

from app.deletion import DependentsError, counted


def test_dependents_are_counted_in_words() -> None:
    err = DependentsError(
        "model 'clip' (mdl_1)",
        {"finetuned_models": 1, "evaluations": 2, "scores": 1, "embeddings": 3,
         "predictors": 1, "active_jobs": 2},
    )  # fmt: skip
    assert err.detail.startswith(
        "model 'clip' (mdl_1) has results or jobs not final yet that a delete would remove or"
        " cancel (1 fine-tuned model,"
        " 2 evaluations, 1 score, 3 embeddings, 1 predictor, 2 active jobs)"
    ), err.detail
    assert err.extensions["dependents"]["finetuned_models"] == 1
    plain = DependentsError("dataset 'd' (dst_1)", {"scores": 2}).detail
    assert plain.startswith("dataset 'd' (dst_1) has results that a delete would remove (2 scores)")
    assert counted(2, "finetuned_models") == "2 fine-tuned models"
    assert counted(1, "active_jobs") == "1 active job"
