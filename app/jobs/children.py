"""Child jobs: a parent fans work out as ordinary jobs and waits without holding a worker.

A parent's handler creates its children and returns `Waiting`; the parent becomes `waiting`
(no lease, no worker). Whoever makes the last child final (its worker, the reaper, a cancel)
queues the parent again in the same transaction, under a lock on the parent row so two
children finishing at once cannot both miss it; the reaper's `wake_ready_parents` is the
backstop for anything lost. The parent's next run reads its children's rows (the truth) and
carries on. Cancelling a job cancels its descendants; a job that ends cancelled or failed
drops a fine-tuned model recorded only for its evaluation children (`drop_unfinished_models`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from app.db import new_id, utcnow
from app.jobs.relay import enqueue
from app.jobtype import JobType
from app.models import Evaluation, FinetunedModel, Job, JobStatus
from app.models.jobs import FINAL_STATUSES

FINAL = [s.value for s in FINAL_STATUSES]


def add_children(
    *,
    session: Session,
    parent_id: str,
    project_id: str,
    children: list[tuple[JobType, dict[str, Any]]],
    max_attempts: int,
    use_broker: bool,
) -> list[str]:
    """Create and enqueue one queued job per (type, params) under `parent_id`; their ids."""
    ids = []
    for job_type, params in children:
        job = Job(
            id=new_id("job"), project_id=project_id, parent_id=parent_id, type=job_type.name,
            queue=job_type.queue, params=params, status=JobStatus.queued.value,
            max_attempts=max_attempts,
        )  # fmt: skip
        session.add(job)
        enqueue(session=session, job=job, use_broker=use_broker)
        ids.append(job.id)
    session.flush()
    return ids


def children_of(session: Session, parent_id: str) -> list[Job]:
    """The children of `parent_id`, oldest first."""
    return list(session.scalars(select(Job).where(Job.parent_id == parent_id).order_by(Job.id)))


def wake_parent(*, session: Session, parent_id: str | None, use_broker: bool) -> bool:
    """Queue `parent_id` again if it is waiting and none of its children is left to run.

    Call it in the transaction that made a child final: the parent row is locked first, so
    of two children finishing at once the second sees the first's status."""
    if parent_id is None:
        return False
    parent = session.scalar(
        select(Job)
        .where(Job.id == parent_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if parent is None or parent.status != JobStatus.waiting.value:
        return False
    if parent.waits_for is not None and session.scalar(
        select(Job.id).where(Job.id == parent.waits_for, Job.status.not_in(FINAL))
    ):
        return False  # it waits for a job that is not final (`app.jobs.dependencies`)
    pending = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.parent_id == parent_id, Job.status.not_in(FINAL))
    )
    if pending:
        return False
    parent.status = JobStatus.queued.value
    parent.stage = "children finished" if parent.waits_for is None else "dependency finished"
    parent.waits_for = None
    parent.updated_at = utcnow()
    enqueue(session=session, job=parent, use_broker=use_broker)
    session.flush()
    return True


def wake_ready_parents(*, session: Session, use_broker: bool, limit: int = 500) -> int:
    """Queue every waiting job whose children, and the job it `waits_for`, are all final
    (the reaper's backstop)."""
    child, target = aliased(Job), aliased(Job)
    open_child = exists().where(child.parent_id == Job.id, child.status.not_in(FINAL))
    blocked = exists().where(target.id == Job.waits_for, target.status.not_in(FINAL))
    ready = session.scalars(
        select(Job.id)
        .where(Job.status == JobStatus.waiting.value, ~open_child, ~blocked)
        .limit(limit)
    ).all()
    return sum(wake_parent(session=session, parent_id=i, use_broker=use_broker) for i in ready)


def descendants(session: Session, job_id: str) -> list[str]:
    """Ids of the children of `job_id`, their children, and so on."""
    found: list[str] = []
    frontier = [job_id]
    while frontier:
        frontier = list(session.scalars(select(Job.id).where(Job.parent_id.in_(frontier))))
        found += frontier
    return found


def cancel_tree(*, session: Session, job_id: str, reason: str | None = None) -> None:
    """Cancel `job_id` and its descendants: queued or waiting ones now, running ones at their
    next heartbeat (`cancel_requested`); `reason`, when given, is their `error` (a running
    job keeps it when it stops)."""
    ids = [job_id, *descendants(session, job_id)]
    now = utcnow()
    why: dict[str, str] = {} if reason is None else {"error": reason}
    session.execute(
        update(Job)
        .where(Job.id.in_(ids), Job.status.in_([JobStatus.queued.value, JobStatus.waiting.value]))
        .values(status=JobStatus.cancelled.value, finished_at=now, stage="cancelled", **why)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Job)
        .where(Job.id.in_(ids), Job.status == JobStatus.running.value)
        .values(cancel_requested=True, **why)
        .execution_options(synchronize_session=False)
    )
    drop_unfinished_models(session, ids)


def drop_unfinished_models(session: Session, job_ids: list[str]) -> None:
    """A fine-tune's model recorded only for its `evaluate` children (status
    ``evaluating``, `workers.tasks.finetune_eval`) goes, with the rows they wrote for it,
    when the job is cancelled or fails however it ends (its worker, the reaper, a cancel):
    call it in the transaction that makes the job final, so no model is left `evaluating`
    under a final job. A `ready` model is never touched."""
    unfinished = select(FinetunedModel.id).where(
        FinetunedModel.job_id.in_(job_ids), FinetunedModel.status == "evaluating"
    )
    session.execute(
        delete(Evaluation)
        .where(Evaluation.finetuned_model_id.in_(unfinished))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(FinetunedModel)
        .where(FinetunedModel.id.in_(unfinished))
        .execution_options(synchronize_session=False)
    )


def settle_models(session: Session, limit: int = 500) -> int:
    """Drop every model still `evaluating` whose job ended failed or cancelled (the reaper's
    backstop, as `settle_datasets` is for datasets: rows an older version left, or a final
    status written without `drop_unfinished_models`). Returns how many."""
    ended = select(Job.id).where(
        Job.status.in_([JobStatus.failed.value, JobStatus.cancelled.value])
    )
    job_ids = list(
        session.scalars(
            select(FinetunedModel.job_id)
            .where(FinetunedModel.status == "evaluating", FinetunedModel.job_id.in_(ended))
            .limit(limit)
        )
    )
    drop_unfinished_models(session, [j for j in job_ids if j is not None])
    return len(job_ids)
