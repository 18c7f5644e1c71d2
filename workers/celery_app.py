"""The Celery application of the production deployment.

Start one worker per GPU with `--pool=solo -Q gpu` and CPU workers with `-Q cpu`:
    celery -A workers.celery_app worker --pool=solo -Q gpu --concurrency=1
It runs only in production mode: without `IIMM_MODE=production` and the database, broker and
storage URLs, importing it exits at once with one line saying what to set.
The broker carries only job ids; the database row is the truth, so a lost or duplicated
message never loses or doubles a job (see `workers.runner`).

SIGTERM (`docker stop`, Kubernetes) starts Celery's warm shutdown: no new message is taken
and the worker exits once its task returns. On Celery's `worker_shutting_down` signal the
running job is cancelled and given back to the queue (the attempt refunded, a new message
sent through the outbox), so another worker takes it at once instead of after the lease
expires; after `IIMM_WORKER_STOP_GRACE_S` it is given back even if it has not stopped.
With ``--pool=solo`` the job runs in the signalled process; with prefork the main process
passes SIGTERM on to its pool processes, which do the same (and leave as usual when the
warm shutdown closes the pool). Other pools (``threads``, ``eventlet``, ``gevent``) run several
jobs in one process and are refused at start (`workers.pools` says why). A worker
killed without warning (SIGKILL, OOM) is covered by acks_late + reject_on_worker_lost and
the lease: the reaper requeues the job when the lease expires.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from billiard import current_process
from billiard.process import active_children
from celery import Celery
from celery.signals import task_prerun, worker_init, worker_process_init, worker_shutting_down

from app.config import get_settings, settings_or_exit
from app.jobs.broker import RUN_JOB_TASK, celery_config

log = logging.getLogger("iimm.celery")

celery_app = Celery("iimm")
# Without IIMM_BROKER_URL Celery would connect to amqp://guest@localhost:5672 and wait there
# for jobs forever: refuse at once, in one line, instead.
celery_app.conf.update(celery_config(settings_or_exit("the Celery worker", production=True)))
celery_app.conf.task_routes = {RUN_JOB_TASK: {"queue": "cpu"}}


@celery_app.task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> str:
    """Run a job by id (it re-fetches everything; a stale or duplicate message is a no-op)."""
    from workers.runner import execute

    outcome = execute(job_id)
    log.info("job %s: %s", job_id, outcome)
    return outcome


app = celery_app


#: Whether jobs run in this process (solo pool) rather than in prefork pool processes.
_JOBS_HERE = {"value": False, "child_handler": False}


@worker_init.connect
def _refuse_unsupported_pool(sender: Any = None, **_: Any) -> None:
    """Before anything else: only the one-job-per-process pools (`workers.pools`). A
    SystemExit, not an Exception, so that Celery's signal dispatch does not log and go on."""
    from workers.pools import problem

    if (why := problem(getattr(sender, "pool_cls", "solo"))) is not None:
        raise SystemExit(why)


@worker_init.connect
def _sweep_at_start(**_: Any) -> None:
    """Before the worker takes a message: the working folders that workers of this machine
    killed with SIGKILL left (`workers.runner.sweep_at_start`)."""
    from workers.runner import sweep_at_start

    sweep_at_start(get_settings())


@worker_process_init.connect
def _note_pool(**_: Any) -> None:
    """The solo pool sends this in the main process: jobs run there."""
    if current_process().name == "MainProcess":
        _JOBS_HERE["value"] = True


@task_prerun.connect
def _handle_sigterm_in_pool_process(**_: Any) -> None:
    """In a prefork pool process (once, before its first task; billiard has set its own
    SIGTERM handler by then, which raises SystemExit wherever the job is): SIGTERM during a
    job gives it back like the solo pool does; while idle, billiard's handler runs."""
    if _JOBS_HERE["value"] or _JOBS_HERE["child_handler"]:
        return
    from workers.runner import STOP

    grace = get_settings().worker_stop_grace_s
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        if STOP.running is None and callable(previous):
            previous(signum, frame)
        else:
            STOP.request_then_give_back(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    _JOBS_HERE["child_handler"] = True


@worker_shutting_down.connect
def _give_back_on_shutdown(**_: Any) -> None:
    """Celery's warm (or cold) shutdown began, in the main process (a signal handler: only
    sets flags, starts a thread, sends signals)."""
    from workers.runner import STOP

    if _JOBS_HERE["value"]:
        STOP.request_then_give_back(get_settings().worker_stop_grace_s)
        return
    for child in active_children():
        if child.pid:
            with contextlib.suppress(ProcessLookupError):  # it has just exited
                os.kill(child.pid, signal.SIGTERM)
