"""Job handlers by type name: the worker half of `app.jobs.registry.JOB_TYPES`.

Handlers take a `JobContext` (ids and params only: they re-fetch what they need) and return
an `Outcome`, whose `write` runs in the same transaction that marks the job succeeded, so
result rows exist if and only if the job succeeded. A new job type adds one line here and
one in `JOB_TYPES`; `tests/workers/tasks/test_registry.py` checks that they agree.
"""

from __future__ import annotations

from app.finetuning.jobs import EVALUATE, FINETUNE, FINETUNE_POINT
from app.jobs.types import EMBED, EMBED_SHARD, INGEST, MEASURES, SCORE
from app.predictors.jobs import ASSESS
from workers.tasks import assess, evaluate, finetune, grid, ingest, measures, score, shards
from workers.tasks.base import Handler, JobContext, JobError, Outcome

HANDLERS: dict[str, Handler] = {
    EMBED.name: shards.run_embed_job,
    EMBED_SHARD.name: shards.run_shard,
    SCORE.name: score.run_score,
    MEASURES.name: measures.run_measures,
    FINETUNE.name: finetune.run_finetune,
    FINETUNE_POINT.name: grid.run_point,
    EVALUATE.name: evaluate.run_evaluate,
    ASSESS.name: assess.run_assess,
    INGEST.name: ingest.run_ingest,
}

__all__ = ["HANDLERS", "Handler", "JobContext", "JobError", "Outcome"]
