"""The stop log line says whether a job was running: an idle worker told to stop does not
claim to give a job back."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import SimpleNamespace

import pytest

from workers.runner import Stopper


def _stop(stopper: Stopper) -> None:
    """One SIGTERM through the wakeup pipe to `stopper`'s watcher, as `install` wires it."""
    read, write = os.pipe()
    os.write(write, bytes([signal.SIGTERM]))
    os.close(write)  # the watcher's wait for a second signal then ends too
    stopper.done.set()  # the loop has finished: no hard stop (which would exit the process)
    stopper._watch(read, grace_s=0.0)
    # `read` stays open: the watcher's second-signal thread may not have read its EOF yet, and
    # closing it under that thread gave EBADF (CI's warning) or, with the number reused, a
    # read of another file's bytes


def test_idle_worker_says_no_job_is_running(caplog: pytest.LogCaptureFixture) -> None:
    stopper = Stopper()
    with caplog.at_level(logging.INFO, logger="iimm"):
        _stop(stopper)
    messages = [r.getMessage() for r in caplog.records if "stop requested" in r.getMessage()]
    assert messages == ["stop requested: no job is running"]
    assert stopper.requested.is_set()


def test_busy_worker_names_the_job_it_gives_back(caplog: pytest.LogCaptureFixture) -> None:
    stopper = Stopper()
    ctx = SimpleNamespace(job_id="job_x", stopping=threading.Event(), cancelled=threading.Event())
    stopper.running = ctx  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="iimm"):
        _stop(stopper)
    messages = [r.getMessage() for r in caplog.records if "stop requested" in r.getMessage()]
    assert messages == ["stop requested: giving back the running job job_x"]
    assert ctx.stopping.is_set() and ctx.cancelled.is_set()
