"""Publishing "go" messages to Celery by task name, so the API never imports worker code."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery

from app.config import Settings

RUN_JOB_TASK = "iimm.run_job"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by the API publisher and the workers."""
    timeout = settings.broker_visibility_timeout_s
    return {
        "broker_url": settings.broker_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_hard_limit_s,
        "task_default_queue": "cpu",
        "task_publish_retry": False,
        "broker_connection_timeout": 3,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": timeout,
            "socket_connect_timeout": 3,
            "socket_timeout": 5,
            "max_retries": 0,
            **(
                {"global_keyprefix": settings.broker_key_prefix}
                if settings.broker_key_prefix
                else {}
            ),
        },
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


_CLIENTS: dict[tuple[object, ...], Celery] = {}
_LOCK = threading.Lock()


def _client(settings: Settings) -> Celery:
    """One publishing Celery app per broker configuration (thread-safe, created lazily)."""
    key = (
        settings.broker_url,
        settings.broker_key_prefix,
        settings.broker_visibility_timeout_s,
        settings.task_hard_limit_s,
    )
    with _LOCK:
        if key not in _CLIENTS:
            app = Celery("iimm-api", set_as_current=False)
            app.conf.update(celery_config(settings))
            _CLIENTS[key] = app
        return _CLIENTS[key]


@contextmanager
def publisher(settings: Settings) -> Iterator[Callable[[str, str], None]]:
    """`send(job_id, queue)` for a batch of run-job messages over one pooled producer (one
    broker connection), instead of acquiring one per message; `send` raises if the broker
    is down."""
    client = _client(settings)
    with client.producer_or_acquire() as producer:

        def send(job_id: str, queue: str) -> None:
            client.send_task(RUN_JOB_TASK, args=[job_id], queue=queue, producer=producer)

        yield send


def ping(settings: Settings) -> None:
    """Raise if the broker cannot be reached."""
    client = _client(settings)
    with client.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
