"""What a job handler sees and returns."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import Storage
from app.config import Settings


class JobError(Exception):
    """A failure the user must fix (bad data, missing weights): fails the job, no retry."""


class JobCancelledError(Exception):
    """The job was cancelled while running."""


@dataclass
class Outcome:
    """A handler's result: JSON for `job.result`, and rows to write when it succeeds."""

    result: dict[str, Any]
    write: Callable[[Session], None] | None = None


@dataclass
class JobContext:
    """Ids, parameters and services for one attempt of one job."""

    job_id: str
    project_id: str
    attempt: int
    params: dict[str, Any]
    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    cancelled: threading.Event = field(default_factory=threading.Event)
    progress_value: float | None = None
    stage: str | None = None

    def progress(self, fraction: float, stage: str | None = None) -> None:
        """Record progress (flushed by the heartbeat); raises JobCancelledError once cancelled."""
        self.progress_value = float(fraction)
        if stage is not None:
            self.stage = stage
        if self.cancelled.is_set():
            raise JobCancelledError()


Handler = Callable[[JobContext], Outcome]
HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register the handler of job type `name`."""

    def wrap(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return wrap
