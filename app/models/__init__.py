"""ORM tables only; domain logic lives in the domain packages."""

from app.models.artifacts import Embedding, Score
from app.models.catalog import BaseModel, Dataset
from app.models.jobs import Job, JobStatus, OutboxEntry
from app.models.tenancy import ApiKey, Project

__all__ = [
    "ApiKey",
    "BaseModel",
    "Dataset",
    "Embedding",
    "Job",
    "JobStatus",
    "OutboxEntry",
    "Project",
    "Score",
]
