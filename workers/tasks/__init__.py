"""Job handlers by type name. Each module registers its handlers with `@handler("type")`.

Handlers take a `JobContext` (ids and params only: they re-fetch what they need) and return
an `Outcome`, whose `write` runs in the same transaction that marks the job succeeded, so
result rows exist if and only if the job succeeded.
"""

from __future__ import annotations

import importlib

from workers.tasks.base import HANDLERS, JobContext, JobError, Outcome, handler

MODULES = (
    "workers.tasks.embed",
    "workers.tasks.score",
    "workers.tasks.measures",
    "workers.tasks.finetune",
    "workers.tasks.evaluate",
    "workers.tasks.assess",
)


def load_handlers() -> None:
    """Import every handler module (later issues append theirs to MODULES)."""
    for module in MODULES:
        importlib.import_module(module)


__all__ = ["HANDLERS", "JobContext", "JobError", "Outcome", "handler", "load_handlers"]
