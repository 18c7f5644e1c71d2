"""The OpenAPI document: short operation ids, one tag per resource."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

TAGS: list[dict[str, Any]] = [
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "datasets", "description": "Image-classification datasets: uploads and references."},
    {"name": "models", "description": "Base models (open_clip architectures and weights)."},
    {"name": "jobs", "description": "Long-running work: embed, score, fine-tune, evaluate, ..."},
    {"name": "scores", "description": "Measures stored by `score` jobs."},
    {"name": "measures", "description": "Measures of embeddings the caller already has."},
    {"name": "finetuned-models", "description": "Models produced by `finetune` jobs."},
    {"name": "evaluations", "description": "Accuracies measured by `evaluate` jobs."},
    {"name": "matrices", "description": "Accuracy matrices: trained-on × evaluated-on."},
    {
        "name": "predictors",
        "description": "Fitted predictors of fine-tuning gain, and their predictions.",
    },
    {"name": "comparisons", "description": "Which measure predicts fine-tuning best."},
    {"name": "rankings", "description": "Which base model and method to pick for a dataset."},
]


def operation_id(route: APIRoute) -> str:
    """The route function's name (`list_datasets`, `create_job`): short and stable."""
    return route.name
