"""A Celery worker runs one job per process: ``--pool=solo`` or ``--pool=prefork``. A pool
that runs several jobs in one process (``threads``) is refused at start in one line naming
the supported pools (`workers.pools` says why), before the worker connects to anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.test_missing_env import _last_line, _run
from workers.pools import problem


def test_a_threads_worker_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    proc = _run(
        ["-m", "celery", "-A", "workers.celery_app", "worker", "--pool=threads", "-Q", "gpu,cpu"],
        tmp_path, IIMM_MODE="production", IIMM_STORAGE_URL=str(tmp_path / "artifacts"),
        IIMM_DATABASE_URL="postgresql+psycopg://iimm@127.0.0.1:1/none",
        IIMM_BROKER_URL="redis://127.0.0.1:1/0",
    )  # fmt: skip
    assert proc.returncode == 1, proc
    line = _last_line(proc)
    assert line.startswith("iimm: the Celery worker runs one job per process"), line
    assert "--pool=solo" in line and "--pool=prefork" in line and "not --pool=threads" in line
    assert "Connection refused" not in proc.stdout + proc.stderr  # refused before connecting


def test_the_supported_pools() -> None:
    from celery.concurrency.prefork import TaskPool as Prefork
    from celery.concurrency.solo import TaskPool as Solo
    from celery.concurrency.thread import TaskPool as Threads

    class MyPrefork(Prefork):
        pass

    for ok in ("solo", "prefork", "processes", Solo, Prefork, MyPrefork):
        assert problem(ok) is None, ok
    assert "not --pool=threads" in str(problem(Threads))
    for name in ("threads", "eventlet", "gevent", "custom"):
        assert f"not --pool={name}:" in str(problem(name))


@pytest.mark.parametrize("doc", ["README.md", "docs/scaling.md"])
def test_the_docs_name_the_supported_pools(doc: str) -> None:
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    assert "`--pool=threads`" in text and "refuse" in text, doc
