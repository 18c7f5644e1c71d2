"""What a job handler sees and returns."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import Storage
from app.config import Settings
from app.jobtype import JobType


class JobError(Exception):
    """A failure the user must fix (bad data, missing weights): fails the job, no retry."""


class JobCancelledError(Exception):
    """The job was cancelled while running."""


@dataclass
class Outcome:
    """A handler's result: JSON for `job.result`, and rows to write when it succeeds."""

    result: dict[str, Any]
    write: Callable[[Session], None] | None = None
    #: Run once the success is committed (e.g. remove files only a retry would have needed).
    after_commit: Callable[[], None] | None = None


@dataclass
class Waiting:
    """A handler's answer when the job must wait for child jobs: `children` (new ones to
    create, as (job type, params)) and those already made run on any worker, and this job
    runs again, from the start of its handler, once they are all final (`app.jobs.children`)."""

    stage: str
    children: list[tuple[JobType, dict[str, Any]]] = field(default_factory=list)
    progress: float | None = None
    detail: dict[str, Any] | None = None  # as `JobContext.progress` units: done, total, unit


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
    lost: threading.Event = field(default_factory=threading.Event)  # another attempt has it
    #: The worker is stopping: the job is cancelled only to be given back to the queue
    #: (`workers.runner.give_back`), so what it wrote to resume from must stay.
    stopping: threading.Event = field(default_factory=threading.Event)
    parent_id: str | None = None
    progress_value: float | None = None
    stage: str | None = None
    units: dict[str, Any] | None = None
    version: int = 0  # bumped by every report; the heartbeat writes only what changed

    def progress(
        self, fraction: float, stage: str | None = None, **units: int | float | str | None
    ) -> None:
        """Record progress (written by the heartbeat thread at most every
        ``settings.progress_interval_s``); raises JobCancelledError once cancelled.

        `fraction` is 0..1 of the whole job; `units` are the figures of the current stage,
        as `app.jobs.schemas.JobProgress` names them: ``done``/``total`` counted in
        ``unit`` ("images", "steps", "datasets", "grid points"), and for training ``epoch``,
        ``epochs``, ``loss`` (the last step's cross-entropy) and ``val_acc`` (top-1, 0..1).
        A report without units clears the previous stage's.
        """
        self.check_cancelled()
        self.progress_value = float(fraction)
        if stage is not None:
            self.stage = stage
        self.units = {k: v for k, v in units.items() if v is not None} or None
        self.version += 1

    def check_cancelled(self) -> None:
        """Raise JobCancelledError if the job was cancelled (loops call this between batches)."""
        if self.cancelled.is_set():
            raise JobCancelledError()


@contextlib.contextmanager
def discard_on_cancel(ctx: JobContext, discard: Callable[[], None]) -> Iterator[None]:
    """Run `discard` (remove what the block wrote) if the job is cancelled inside the block,
    unless the claim was lost (another attempt owns, and may be using, those files) or the
    worker is stopping (`JobContext.stopping`: the job goes back to the queue and its next
    attempt resumes from them, e.g. a fine-tune from its last epoch's checkpoint)."""
    try:
        yield
    except JobCancelledError:
        if not ctx.lost.is_set() and not ctx.stopping.is_set():
            discard()
        raise


Handler = Callable[[JobContext], Outcome | Waiting]
