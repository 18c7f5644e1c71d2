"""Which Celery pools a worker may run: one job per process (``solo``, ``prefork``).

Jobs rely on per-process state that belongs to the one job running in the process: the
stop handler's running job (`workers.runner.STOP`, what SIGTERM cancels and gives back), the
artifact cache's locks (released after each job: `app.artifacts.cache`), the decoding
processes kept for the next job, the model cache, fine-tuning's torch thread count
(`torch.set_num_threads` is process-wide) and the GPU's memory. A ``threads`` pool (or
``eventlet``/``gevent``, green threads in one process) runs several jobs in one process: a
SIGTERM could give back only one of them, one job's end would let the cache remove copies
another job is reading, and jobs would change each other's thread count. So a worker with
such a pool refuses to start (`problem`), saying which pools are supported.
"""

from __future__ import annotations

from typing import Any

#: Celery's names of the supported pools (``processes`` is Celery's old name of prefork).
SUPPORTED = ("solo", "prefork", "processes")


def _name(pool: Any) -> str:
    if isinstance(pool, str):
        return pool
    if isinstance(pool, type):
        from celery.concurrency.prefork import TaskPool as Prefork
        from celery.concurrency.solo import TaskPool as Solo

        if issubclass(pool, Solo):
            return "solo"
        if issubclass(pool, Prefork):
            return "prefork"
        from celery.concurrency import ALIASES

        path = f"{pool.__module__}:{pool.__qualname__}"
        return next((alias for alias, p in ALIASES.items() if p == path), path)
    return repr(pool)


def problem(pool: Any) -> str | None:
    """Why a worker with Celery pool `pool` (a name as given to ``--pool``, or a pool class)
    must not start; None for a supported pool."""
    name = _name(pool)
    if name.lower() in SUPPORTED:
        return None
    return (
        f"iimm: the Celery worker runs one job per process and supports --pool=solo (one per"
        f" GPU) or --pool=prefork, not --pool={name}: jobs of one process would share its"
        " stop handler, artifact cache locks, decoding processes and GPU, and a SIGTERM could"
        " not give each running job back; run several solo workers for several jobs at once"
    )
