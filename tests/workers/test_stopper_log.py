"""The stop log line says whether a job was running: an idle worker told to stop does not
claim to give a job back. Only a second signal is a hard stop: `iimm serve`'s request through
the stop pipe, next to the signal its whole process group got, is not."""

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
    stopper._watch(read, [], grace_s=0.0)
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


def _hard_stops(monkeypatch: pytest.MonkeyPatch, signals: int, channel: bool) -> list[bool]:
    """What `_hard_stop` is called with when `signals` SIGTERMs (and, if `channel`, the stop
    pipe's end of file) are there at once and the grace is over (0 s) with the loop running."""
    calls: list[bool] = []
    stopper = Stopper()
    monkeypatch.setattr(stopper, "_hard_stop", lambda *, second_signal: calls.append(second_signal))
    read, write = os.pipe()
    os.write(write, bytes([signal.SIGTERM] * signals))
    chan_read, chan_write = os.pipe()
    if channel:
        os.close(chan_write)
    try:
        stopper._watch(read, [chan_read], grace_s=0.0)
    finally:
        os.close(write)
        if not channel:
            os.close(chan_write)
    assert stopper.requested.is_set()
    return calls


def test_signal_and_stop_pipe_are_one_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _hard_stops(monkeypatch, signals=1, channel=True) == [False]  # the grace ran out
    assert _hard_stops(monkeypatch, signals=0, channel=True) == [False]
    assert _hard_stops(monkeypatch, signals=2, channel=True) == [True]  # Ctrl-C twice
    assert _hard_stops(monkeypatch, signals=2, channel=False) == [True]
