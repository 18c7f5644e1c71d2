"""The Celery application of the production deployment.

Start one worker per GPU with `--pool=solo -Q gpu` and CPU workers with `-Q cpu`:
    celery -A workers.celery_app worker --pool=solo -Q gpu --concurrency=1
The broker carries only job ids; the database row is the truth, so a lost or duplicated
message never loses or doubles a job (see `workers.runner`).
"""

from __future__ import annotations

import logging

from celery import Celery

from app.config import get_settings
from app.jobs.broker import RUN_JOB_TASK, celery_config

log = logging.getLogger("iimm.celery")

celery_app = Celery("iimm")
celery_app.conf.update(celery_config(get_settings()))
celery_app.conf.task_routes = {RUN_JOB_TASK: {"queue": "cpu"}}


@celery_app.task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> str:
    """Run a job by id (it re-fetches everything; a stale or duplicate message is a no-op)."""
    from workers.runner import execute

    outcome = execute(job_id)
    log.info("job %s: %s", job_id, outcome)
    return outcome


app = celery_app
