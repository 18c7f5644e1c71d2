"""The `assess` job: the `embed` and `score` handlers in turn, then every matching prediction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.db import session_scope
from app.predictors.jobs import AssessParams
from workers.tasks.base import JobContext, JobError, Outcome
from workers.tasks.embed import run_embed
from workers.tasks.score import run_score

SPLIT = "test"


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


def _step(
    ctx: JobContext,
    run: Callable[[JobContext], Outcome],
    params: dict[str, Any],
    span: tuple[float, float],
) -> dict[str, Any]:
    """Run another job type's handler for this job and commit what it writes."""
    step = _StepContext(
        job_id=ctx.job_id, project_id=ctx.project_id, attempt=ctx.attempt, params=params,
        settings=ctx.settings, sessions=ctx.sessions, storage=ctx.storage,
        cancelled=ctx.cancelled, parent=ctx, span=span,
    )  # fmt: skip
    outcome = run(step)
    if outcome.write is not None:
        try:
            with session_scope(ctx.sessions) as session:
                outcome.write(session)
        except IntegrityError:
            pass  # a concurrent job stored the same content-addressed rows first
    return outcome.result


def _measures(ctx: JobContext, model_id: str) -> list[str]:
    """The O(n·d) family plus every measure a predictor of this model uses as its feature."""
    from app.measures import ALL_MEASURES, FAST_MEASURES
    from app.predictors.assess import model_predictors

    with session_scope(ctx.sessions) as session:
        used = {p.feature for p in model_predictors(
            session, project_id=ctx.project_id, model_id=model_id)}  # fmt: skip
    return [*FAST_MEASURES, *sorted(used & (set(ALL_MEASURES) - set(FAST_MEASURES)))]


def run_assess(ctx: JobContext) -> Outcome:
    """Embed (reusing stored embeddings), score with an IIMM interval, predict."""
    from app.predictors.assess import assess_document

    p = AssessParams.model_validate({"type": "assess", **ctx.params})
    base = {"model_id": p.model_id, "dataset_id": p.dataset_id, "split": SPLIT,
            "prompts": p.prompts}  # fmt: skip
    embedded = _step(ctx, run_embed, base, (0.0, 0.7))
    score = {**base, "bootstrap": p.bootstrap, "measures": _measures(ctx, p.model_id)}
    _step(ctx, run_score, score, (0.7, 0.95))
    ctx.progress(0.95, "predicting")
    try:
        with session_scope(ctx.sessions) as session:
            doc = assess_document(
                session, project_id=ctx.project_id, model_id=p.model_id,
                dataset_id=p.dataset_id, level=p.level,
            )  # fmt: skip
    except ValueError as exc:
        raise JobError(str(exc)) from None
    return Outcome({**doc, "model_name": embedded.get("model_name"),
                    "dataset_name": embedded.get("dataset_name"),
                    "embedding_id": embedded.get("embedding_id"),
                    "embeddings_reused": bool(embedded.get("reused"))})  # fmt: skip
