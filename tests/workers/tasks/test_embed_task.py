"""The embed job's DataLoader workers: parallel decoding wherever the process may fork."""

from __future__ import annotations

import multiprocessing

import pytest
from pydantic import ValidationError

from app.config import Settings
from workers.tasks.embed import loader_workers


def _report(queue: multiprocessing.Queue, setting: int | None) -> None:
    queue.put(loader_workers(setting))


@pytest.mark.parametrize("daemon", [False, True])
def test_unset_means_parallel_decoding_unless_the_process_is_daemonic(daemon: bool) -> None:
    # Celery's prefork pool runs jobs in daemonic children, which may not start processes
    # (a DataLoader with workers would fail there); the embedded worker and Celery's solo
    # pool run them in a normal process, where the library picks the count by device.
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_report, args=(queue, None), daemon=daemon)
    proc.start()
    got = queue.get(timeout=60)
    proc.join(timeout=60)
    assert got == (0 if daemon else None)


def test_an_explicit_setting_wins() -> None:
    assert loader_workers(0) == 0
    assert loader_workers(3) == 3
    assert Settings().embed_num_workers is None


def test_negative_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IIMM_EMBED_NUM_WORKERS", "-1")
    with pytest.raises(ValidationError, match="embed_num_workers"):
        Settings()
    monkeypatch.setenv("IIMM_EMBED_NUM_WORKERS", "2")
    assert Settings().embed_num_workers == 2
