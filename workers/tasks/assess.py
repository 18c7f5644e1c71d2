"""The `assess` job: the `embed` and `score` handlers in turn, then every matching prediction.

The embedding step is the `embed` job's handler (`workers.tasks.shards.run_embed_job`): a test
split of more than `embed_shard_threshold` images that is not stored yet is embedded by
`embed_shard` children of the assess job, which waits for them holding no worker, runs again
when they are final, merges them into the stored embedding (the bytes one run stores) and goes
on to score and predict. Any other split is embedded (or reused) in the job's own run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.db import session_scope
from app.predictors.jobs import AssessParams
from workers.tasks.base import JobContext, JobError, Outcome, Waiting
from workers.tasks.score import run_score
from workers.tasks.shards import run_embed_job

SPLIT = "test"
#: Shares of the job's progress: embedding, then scoring (predicting is the rest).
EMBED_SPAN, SCORE_SPAN = (0.0, 0.7), (0.7, 0.95)


@dataclass
class _StepContext(JobContext):
    """A step of the job: progress maps into `span` of the parent's progress."""

    parent: JobContext | None = None
    span: tuple[float, float] = (0.0, 1.0)

    def progress(
        self, fraction: float, stage: str | None = None, **units: int | float | str | None
    ) -> None:
        assert self.parent is not None
        low, high = self.span
        self.parent.progress(low + (high - low) * float(fraction), stage, **units)


def _context(ctx: JobContext, params: dict[str, Any], span: tuple[float, float]) -> JobContext:
    """This job's context for a step run with another job type's `params`."""
    return _StepContext(
        job_id=ctx.job_id, project_id=ctx.project_id, attempt=ctx.attempt, params=params,
        settings=ctx.settings, sessions=ctx.sessions, storage=ctx.storage,
        cancelled=ctx.cancelled, lost=ctx.lost, stopping=ctx.stopping, parent_id=ctx.parent_id,
        parent=ctx, span=span,
    )  # fmt: skip


def _commit(ctx: JobContext, outcome: Outcome) -> dict[str, Any]:
    """Commit what a step's outcome writes, then run its `after_commit`; its result."""
    if outcome.write is not None:
        try:
            with session_scope(ctx.sessions) as session:
                outcome.write(session)
        except IntegrityError:
            pass  # a concurrent job stored the same content-addressed rows first
    if outcome.after_commit is not None:
        outcome.after_commit()
    return outcome.result


def _step(
    ctx: JobContext,
    run: Callable[[JobContext], Outcome],
    params: dict[str, Any],
    span: tuple[float, float],
) -> dict[str, Any]:
    """Run another job type's handler for this job and commit what it writes."""
    return _commit(ctx, run(_context(ctx, params, span)))


def _waiting(waiting: Waiting, span: tuple[float, float]) -> Waiting:
    """A step's `Waiting` with its progress mapped into `span` of the job's."""
    low, high = span
    progress = None if waiting.progress is None else low + (high - low) * waiting.progress
    return Waiting(waiting.stage, waiting.children, progress, waiting.detail)


def _measures(ctx: JobContext, model_id: str) -> list[str]:
    """The O(n·d) family plus every measure a predictor of this model uses as its feature."""
    from app.measures import ALL_MEASURES, FAST_MEASURES
    from app.predictors.assess import model_predictors

    with session_scope(ctx.sessions) as session:
        used = {p.feature for p in model_predictors(
            session, project_id=ctx.project_id, model_id=model_id)}  # fmt: skip
    return [*FAST_MEASURES, *sorted(used & (set(ALL_MEASURES) - set(FAST_MEASURES)))]


def run_assess(ctx: JobContext) -> Outcome | Waiting:
    """Embed (reusing stored embeddings; a large split as shard jobs, waiting for them),
    score with an IIMM interval, predict."""
    import functools

    from app.comparisons.service import comparison_for_choice
    from app.predictors.assess import assess_document

    p = AssessParams.model_validate({"type": "assess", **ctx.params})
    base = {"model_id": p.model_id, "dataset_id": p.dataset_id, "split": SPLIT,
            "prompts": p.prompts}  # fmt: skip
    embedding = run_embed_job(_context(ctx, base, EMBED_SPAN))
    if isinstance(embedding, Waiting):
        return _waiting(embedding, EMBED_SPAN)
    embedded = _commit(ctx, embedding)
    score = {**base, "bootstrap": p.bootstrap, "measures": _measures(ctx, p.model_id)}
    _step(ctx, run_score, score, SCORE_SPAN)
    ctx.progress(0.95, "predicting")
    try:
        with session_scope(ctx.sessions) as session:
            doc = assess_document(
                session, project_id=ctx.project_id, model_id=p.model_id,
                dataset_id=p.dataset_id, level=p.level, by=p.by,
                comparison_of=functools.partial(
                    comparison_for_choice, session, ctx.project_id, p.model_id),
            )  # fmt: skip
    except ValueError as exc:
        raise JobError(str(exc)) from None
    return Outcome({**doc, "model_name": embedded.get("model_name"),
                    "dataset_name": embedded.get("dataset_name"),
                    "embedding_id": embedded.get("embedding_id"),
                    "embeddings_reused": bool(embedded.get("reused"))})  # fmt: skip
