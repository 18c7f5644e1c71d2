"""ORM tables only; domain logic lives in the domain packages."""

from app.models.artifacts import ArtifactUsage, Embedding, Score
from app.models.catalog import Dataset, PretrainedModel
from app.models.finetuning import Evaluation, FinetunedModel
from app.models.jobs import Job, JobStatus, OutboxEntry
from app.models.predictors import Predictor
from app.models.tenancy import ApiKey, Project
from app.models.webhooks import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "ArtifactUsage",
    "Dataset",
    "Embedding",
    "Evaluation",
    "FinetunedModel",
    "Job",
    "JobStatus",
    "OutboxEntry",
    "Predictor",
    "PretrainedModel",
    "Project",
    "Score",
    "WebhookDelivery",
    "WebhookEndpoint",
]
