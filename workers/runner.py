"""Running one job under a claim: claim, heartbeat, handler, finish. Shared by both modes.

Production: the Celery task `iimm.run_job(job_id)` calls `execute`. Embedded: `poll_forever`
finds queued jobs in the database and calls the same `execute` (no broker at all).

Stopping (embedded worker, `main`): SIGTERM or SIGINT cancels the running job and gives it
back to the queue at once (the attempt is refunded), so that another worker takes it; a job
that has not stopped after `worker_stop_grace_s` is given back anyway and the process exits
(its decoding processes are ended and its temp folders removed). A second signal exits at
once the same way. `iimm serve` asks its worker to stop through a pipe, not a signal
(`Stopper`), so one signal sent to serve's whole process group is one stop.

Stopping (Celery, `workers.celery_app`): SIGTERM starts Celery's warm shutdown (no new
message is taken); the running job is cancelled the same way (`Stopper.request_then_give_back`),
so it is given back at once and the warm shutdown ends with the task instead of after it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.util
import os
import selectors
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import Storage
from app.config import Settings, get_settings
from app.db import after_commit, make_engine, make_sessionmaker, session_scope
from app.jobs import children, claims, dependencies
from app.jobs.relay import enqueue
from app.models import Job, JobStatus
from workers.tasks import HANDLERS, JobContext, JobError
from workers.tasks.base import JobCancelledError, Waiting

log = logging.getLogger("iimm.worker")


@dataclass(frozen=True)
class WorkerEnv:
    """Per-process services, built once."""

    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    worker_id: str


@lru_cache(maxsize=1)
def worker_env() -> WorkerEnv:
    """The process's settings, session factory and storage (lazily, after fork)."""
    settings = get_settings()
    _bound_model_cache(settings)
    return WorkerEnv(
        settings=settings,
        sessions=make_sessionmaker(make_engine(settings.db_url)),
        storage=Storage.for_settings(settings),
        worker_id=f"{socket.gethostname()}:{os.getpid()}",
    )


def _bound_model_cache(settings: Settings) -> None:
    """Apply the settings' bounds to this process's model cache (`workers.ml.models`)."""
    from workers.ml.models import configure_model_cache

    configure_model_cache(
        max_models=settings.model_cache_max_models, max_bytes=settings.model_cache_max_bytes
    )


class Heartbeat(threading.Thread):
    """The job's thread to the database while it runs.

    Every ``progress_interval_s`` (1 s by default, at most 2 s) it reads the cancel flag
    and, when the handler reported new progress since the last write, writes it (one
    conditional UPDATE that also extends the lease); with nothing new it extends the lease
    every lease/3. Handlers report as often as they like: writes are throttled here.
    """

    def __init__(self, env: WorkerEnv, ctx: JobContext) -> None:
        super().__init__(name=f"heartbeat-{ctx.job_id}", daemon=True)
        self.env, self.ctx = env, ctx
        self.stopped = threading.Event()
        self.lost = threading.Event()
        self.written = -1  # ctx.version last written
        self.renewed = time.monotonic()

    def beat(self) -> None:
        """One tick: write progress (and the lease) if due, else only read the cancel flag."""
        ctx = self.ctx
        version = ctx.version
        renew = time.monotonic() - self.renewed >= self.env.settings.lease_s / 3
        with session_scope(self.env.sessions) as session:
            if version != self.written or renew:
                ours, cancel = claims.heartbeat(
                    session=session, job_id=ctx.job_id, attempt=ctx.attempt,
                    lease_s=self.env.settings.lease_s, progress=ctx.progress_value,
                    stage=ctx.stage, detail=ctx.units,
                )  # fmt: skip
                self.written, self.renewed = version, time.monotonic()
            else:
                ours, cancel = claims.poll(session=session, job_id=ctx.job_id, attempt=ctx.attempt)
        if cancel or not ours:
            ctx.cancelled.set()
        if not ours:
            self.lost.set()
            ctx.lost.set()

    def run(self) -> None:
        interval = min(self.env.settings.progress_interval_s, self.env.settings.lease_s / 3)
        while not self.stopped.wait(interval):
            try:
                self.beat()
            except Exception as exc:  # database blip: the lease still has time
                log.warning("heartbeat of %s failed: %s", self.ctx.job_id, exc)


def _context(env: WorkerEnv, job_id: str, attempt: int) -> JobContext | None:
    with session_scope(env.sessions) as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        if job is None:
            return None
        return JobContext(
            job_id=job.id, project_id=job.project_id, attempt=attempt, params=dict(job.params),
            settings=env.settings, sessions=env.sessions, storage=env.storage,
            parent_id=job.parent_id,
        )  # fmt: skip


def _job_type(env: WorkerEnv, job_id: str) -> str | None:
    with session_scope(env.sessions) as session:
        return session.scalar(select(Job.type).where(Job.id == job_id))


def execute(job_id: str) -> str:
    """Run job `job_id` if it can be claimed; returns what happened (for logs and tests)."""
    env = worker_env()
    with session_scope(env.sessions) as session:
        attempt = claims.claim(
            session=session, job_id=job_id, worker_id=env.worker_id, lease_s=env.settings.lease_s
        )
    if attempt is None:
        return "skipped: not queued (already running, finished, or cancelled)"
    ctx = _context(env, job_id, attempt)
    job_type = _job_type(env, job_id)
    if ctx is None or job_type is None:
        return "skipped: job vanished"
    beat = Heartbeat(env, ctx)
    beat.start()
    STOP.running = ctx
    try:
        if STOP.requested.is_set():
            ctx.stopping.set()
            ctx.cancelled.set()
        return _run(env, ctx, job_type, beat)
    finally:
        STOP.running = None
        beat.stopped.set()
        beat.join(timeout=5)
        after_job(env)


def after_job(env: WorkerEnv) -> None:
    """Let the cache drop what the job read, and keep it within its bounds (the store is
    checked for removed artifacts when due: `app.artifacts.cache`; with a local store, only
    remote references are cached)."""
    env.storage.cache.release()
    try:
        env.storage.cache.prune_if_due()
    except Exception as exc:  # a full disk, the store away: the next job tries again
        log.warning("pruning the artifact cache failed: %s", exc)


def public_error(text: str, data_dir: Path | str) -> str:
    """A job's `error` as its caller may see it: the server's data directory (where uploads
    are extracted and artifacts kept) cut out of it, a file inside it named from there
    (``<data dir>/tmp/...``). A safety net behind messages that already name only members."""
    root = str(data_dir).rstrip("/")
    return text.replace(root + "/", "<data dir>/").replace(root, "<data dir>") if root else text


def _finish(env: WorkerEnv, ctx: JobContext, status: JobStatus, **kw: object) -> bool:
    if isinstance(kw.get("error"), str):
        kw["error"] = public_error(str(kw["error"]), env.settings.data_dir)
    with session_scope(env.sessions) as session:
        ok = claims.finish(
            session=session, job_id=ctx.job_id, attempt=ctx.attempt, status=status, **kw
        )  # type: ignore[arg-type]
        if ok:
            _wake_parent(env, ctx, session)
        return ok


def _wake_parent(env: WorkerEnv, ctx: JobContext, session: Session) -> None:
    """This job is final: its parent goes on if it was the last child, and the jobs waiting
    for it (a dataset's ingest job) are queued again (same transaction)."""
    children.wake_parent(
        session=session, parent_id=ctx.parent_id, use_broker=env.settings.uses_broker
    )
    dependencies.job_final(session=session, job_id=ctx.job_id, use_broker=env.settings.uses_broker)


def _gate(env: WorkerEnv, ctx: JobContext) -> str | None:
    """Park the job as `waiting` for the ingest job of a dataset it names that is still
    being validated, or fail it if such a dataset failed; None when it can run."""
    with session_scope(env.sessions) as session:
        found = dependencies.gate(session, ctx.project_id, ctx.params, ctx.job_id)
        if found is None:
            return None
        if found.error is None:
            ok = claims.wait(
                session=session, job_id=ctx.job_id, attempt=ctx.attempt, stage=found.stage,
                progress=None, waits_for=found.wait_for,
            )  # fmt: skip
            if ok:
                return f"waiting: {found.stage}"
    if found.error is not None:
        ok = _finish(env, ctx, JobStatus.failed, error=found.error)
        return f"failed: {found.error}" if ok else "lost: lease taken over"
    return "cancelled" if _finish(env, ctx, JobStatus.cancelled) else "lost: lease taken over"


def _wait(env: WorkerEnv, ctx: JobContext, waiting: Waiting) -> str:
    """Park the job as `waiting`, create its new children, give the worker back."""
    with session_scope(env.sessions) as session:
        ok = claims.wait(
            session=session, job_id=ctx.job_id, attempt=ctx.attempt, stage=waiting.stage,
            progress=waiting.progress, detail=waiting.detail,
        )  # fmt: skip
        if ok:
            children.add_children(
                session=session, parent_id=ctx.job_id, project_id=ctx.project_id,
                children=waiting.children, max_attempts=env.settings.max_attempts,
                use_broker=env.settings.uses_broker,
            )  # fmt: skip
            # Children made before this run may all be final already: go on at once.
            children.wake_parent(
                session=session, parent_id=ctx.job_id, use_broker=env.settings.uses_broker
            )
    if ok:
        return f"waiting: {waiting.stage}"
    return "cancelled" if _finish(env, ctx, JobStatus.cancelled) else "lost: lease taken over"


def _run(env: WorkerEnv, ctx: JobContext, job_type: str, beat: Heartbeat) -> str:
    fn = HANDLERS.get(job_type)
    if fn is None:
        _finish(env, ctx, JobStatus.failed, error=f"no worker handler for job type {job_type!r}")
        return "failed: unknown type"
    if (gated := _gate(env, ctx)) is not None:
        return gated
    try:
        outcome = fn(ctx)
    except JobCancelledError:
        if beat.lost.is_set():
            return "lost: lease taken over"
        if STOP.requested.is_set():
            return give_back(env, ctx)
        _finish(env, ctx, JobStatus.cancelled)
        return "cancelled"
    except JobError as exc:
        _finish(env, ctx, JobStatus.failed, error=str(exc))
        return f"failed: {exc}"
    except Exception as exc:
        if STOP.stopping():  # interrupted by the stop (a decoding process's signal)
            return give_back(env, ctx)
        log.exception("job %s attempt %s crashed", ctx.job_id, ctx.attempt)
        return _retry_or_fail(env, ctx, exc)
    if isinstance(outcome, Waiting):
        return _wait(env, ctx, outcome)
    with session_scope(env.sessions) as session:
        ok = claims.finish(
            session=session, job_id=ctx.job_id, attempt=ctx.attempt,
            status=JobStatus.succeeded, result=outcome.result,
        )  # fmt: skip
        if ok and outcome.write is not None:
            outcome.write(session)
        if ok:
            _wake_parent(env, ctx, session)
        if ok and outcome.after_commit is not None:
            after_commit(session, outcome.after_commit)
    return "succeeded" if ok else "lost: lease taken over"


def _retry_or_fail(env: WorkerEnv, ctx: JobContext, exc: Exception) -> str:
    reason = public_error(f"{type(exc).__name__}: {exc}", env.settings.data_dir)
    with session_scope(env.sessions) as session:
        job = session.scalar(select(Job).where(Job.id == ctx.job_id))
        if (
            job is not None
            and ctx.attempt < job.max_attempts
            and claims.release(
                session=session, job_id=ctx.job_id, attempt=ctx.attempt, reason=reason
            )
        ):
            session.flush()
            session.refresh(job)
            enqueue(session=session, job=job, use_broker=env.settings.uses_broker)
            return f"retrying: {reason}"
    _finish(
        env, ctx, JobStatus.failed, error=f"internal error after {ctx.attempt} attempt(s): {reason}"
    )
    return f"failed: {reason}"


def give_back(env: WorkerEnv, ctx: JobContext) -> str:
    """Return our running attempt to the queue because this worker is stopping (refunded)."""
    with session_scope(env.sessions) as session:
        if not claims.release(
            session=session, job_id=ctx.job_id, attempt=ctx.attempt,
            reason="worker stopped", refund=True,
        ):  # fmt: skip
            return "lost: lease taken over"
        job = session.scalar(select(Job).where(Job.id == ctx.job_id))
        if job is not None:
            enqueue(session=session, job=job, use_broker=env.settings.uses_broker)
    return "given back: worker stopping"


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_FD_ENV = "IIMM_STOP_FD"  # a pipe's read end: its end of file asks the worker to stop


class Stopper:
    """SIGTERM/SIGINT handling of an embedded worker process (see the module docstring).

    The signals are read from a wakeup fd by a thread, so a stop is noticed even while the
    main thread is inside a long C call that delays Python signal handlers. A process that
    starts the worker (`iimm serve`) asks it to stop through a channel instead of a signal:
    the end of file of a pipe (``IIMM_STOP_FD``), which also comes when that process dies.
    Only signals count towards the second signal that means "stop now": a signal sent to a
    whole process group (a terminal's Ctrl-C, ``kill -TERM -<pgid>``, systemd's
    KillMode=control-group) reaches the worker once and `iimm serve`'s request comes by the
    channel, so it is one stop, with the clean-up of a normal exit.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.running: JobContext | None = None
        self.done = threading.Event()
        self._wake: int | None = None  # write end of our own channel (`request_quietly`)
        self.signalled = False  # a stop signal has arrived (set by the handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signalled = True

    def stopping(self) -> bool:
        """Whether a stop was asked for (or a stop signal arrived, not yet handled)."""
        return self.signalled or self.requested.is_set()

    def install(self, grace_s: float, channel: int | None = None) -> None:
        """Handle SIGTERM and SIGINT in this (main) thread's process; `channel`: a pipe's
        read end whose end of file (or any byte) asks for a stop as the first signal does."""
        read, write = os.pipe()
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            # The stop is also marked here, in the main thread: Python runs pending handlers
            # in signal-number order, so it is seen before PyTorch's SIGCHLD handler raises
            # for a decoding process the same signal ended (`_run`: given back, not failed).
            # (a plain attribute: an Event's lock may be held by the interrupted main thread)
            signal.signal(sig, self._on_signal)
        os.register_at_fork(after_in_child=_default_signals)
        own, self._wake = os.pipe()
        channels = [own] if channel is None else [own, channel]
        threading.Thread(
            target=self._watch, args=(read, channels, grace_s), name="stopper", daemon=True
        ).start()

    def request(self) -> None:
        """Stop: no new job; the running one is cancelled and given back, keeping what it
        wrote to resume from (`JobContext.stopping`, set before it is cancelled)."""
        self.requested.set()
        ctx = self.running
        if ctx is not None:
            ctx.stopping.set()
            ctx.cancelled.set()

    def request_quietly(self) -> None:
        """Ask for a stop as a first signal does, without counting as a signal (the parent
        process is gone: `workers.lifeline`)."""
        if self._wake is None:
            self.request()
            return
        with contextlib.suppress(OSError):
            os.close(self._wake)

    def request_then_give_back(self, grace_s: float) -> None:
        """Stop (`request`) from a signal handler of a process whose loop is not ours
        (Celery's); if the running job has not stopped after `grace_s` seconds, give it back
        anyway (its late writes then match nothing). Never exits the process."""
        ctx = self.running
        self.request()
        if ctx is None:
            return

        def watch() -> None:
            deadline = time.monotonic() + grace_s
            while self.running is ctx and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.running is ctx:
                try:
                    outcome = give_back(worker_env(), ctx)
                    log.warning("job %s did not stop in time: %s", ctx.job_id, outcome)
                except Exception as exc:  # the reaper requeues it when the lease expires
                    log.warning("could not give back job %s: %s", ctx.job_id, exc)

        threading.Thread(target=watch, name="stopper", daemon=True).start()

    def _watch(self, signals: int, channels: list[int], grace_s: float) -> None:
        """Wait for a stop (a signal, or a channel's end of file), ask for it, then wait for
        the main loop to end: a second signal, or the grace running out, is a hard stop."""
        with selectors.DefaultSelector() as sel:
            sel.register(signals, selectors.EVENT_READ)
            for fd in channels:
                sel.register(fd, selectors.EVENT_READ)
            received, asked = 0, False
            while not received and not asked:
                received, asked = _stop_events(sel, signals, None)
            ctx = self.running
            if ctx is not None:
                log.info("stop requested: giving back the running job %s", ctx.job_id)
            else:
                log.info("stop requested: no job is running")
            self.request()
            deadline = time.monotonic() + grace_s
            while not self.done.is_set() and received < 2 and time.monotonic() < deadline:
                received += _stop_events(sel, signals, 0.1)[0]
        if not self.done.is_set():
            self._hard_stop(second_signal=received >= 2)

    def _hard_stop(self, *, second_signal: bool) -> None:
        """The job did not stop in time (or a second signal came): give it back, end the
        decoding processes, remove the temp folders a normal exit removes (the pool's
        payload folder, Python multiprocessing's ``pymp-*``), and exit at once."""
        log.warning("%s: stopping now", "second stop signal" if second_signal else "grace over")
        ctx = self.running
        if ctx is not None:
            try:
                outcome = give_back(worker_env(), ctx)
                log.warning("job %s did not stop in time: %s", ctx.job_id, outcome)
            except Exception as exc:  # the reaper will requeue it when the lease expires
                log.warning("could not give back job %s: %s", ctx.job_id, exc)
        _end_children()
        pool = sys.modules.get("workers.ml.data.pool")
        if pool is not None:
            pool.remove_payload_dir()
        # the folder atexit would remove (made here if the process had none: removed at once)
        shutil.rmtree(multiprocessing.util.get_temp_dir(), ignore_errors=True)
        logging.shutdown()
        os._exit(0)


def _default_signals() -> None:
    """In a forked child (a decoding process): not our stop handling. Its signals would
    otherwise be written into our wakeup pipe and count here as more stop signals."""
    with contextlib.suppress(ValueError):  # forked from another thread: not the main one
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _stop_events(
    sel: selectors.BaseSelector, signals: int, timeout: float | None
) -> tuple[int, bool]:
    """Wait up to `timeout` for the wakeup fd `signals` or a channel: the number of stop
    signals read, and whether a channel asked for a stop (read once: its end of file stays
    readable). Every signal with a Python handler writes its number to the wakeup fd
    (PyTorch's DataLoader handles SIGCHLD, which arrives whenever a decoding process stops,
    continues or exits): those are not a stop."""
    received, asked = 0, False
    for key, _ in sel.select(timeout):
        if key.fd == signals:
            data = os.read(signals, 64)
            received += sum(b in STOP_SIGNALS for b in data)
            if not data:  # closed (tests): nothing more will come
                sel.unregister(signals)
        else:
            sel.unregister(key.fd)
            asked = True
    return received, asked


def _end_children(wait_s: float = 2.0) -> None:
    """SIGTERM to this process's multiprocessing children (decoding processes), SIGKILL to
    those still running after `wait_s`."""
    children = multiprocessing.active_children()
    for child in children:
        with contextlib.suppress(OSError):
            child.terminate()
    deadline = time.monotonic() + wait_s
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            with contextlib.suppress(OSError):
                child.kill()
            child.join(1.0)


STOP = Stopper()


def poll_forever(queues: list[str], stop: threading.Event | None = None) -> None:
    """Embedded worker: claim queued jobs straight from the database, one at a time."""
    env = worker_env()
    stop = stop or STOP.requested
    log.info("embedded worker %s polling queues %s", env.worker_id, queues)
    while not stop.is_set():
        try:
            with session_scope(env.sessions) as session:
                job_id = claims.next_queued(session=session, queues=queues)
        except Exception as exc:
            log.warning("polling failed: %s", exc)
            job_id = None
        if job_id is None:
            if env.storage.cache.check_due():
                after_job(env)  # idle: drop copies of what was deleted meanwhile
            stop.wait(env.settings.worker_poll_s)
            continue
        started = time.monotonic()
        outcome = execute(job_id)
        log.info("job %s: %s (%.1fs)", job_id, outcome, time.monotonic() - started)


def main() -> None:
    """`python -m workers.runner [QUEUE ...]`: the embedded worker process."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    serve_worker(sys.argv[1:] or ["gpu", "cpu"], settings)
    before_exit()


def before_exit() -> None:
    """Make the exit of a worker process that has stopped quick: its objects (models,
    PyTorch, a pool's state) go to the garbage collector's permanent generation, which the
    interpreter's last collections skip. Stopping an idle worker with a model loaded took
    about 1.6 CPU seconds after SIGTERM, nearly all of it that collection, and about 0.25
    with this; a loaded machine multiplies both. atexit handlers still run (the decoding
    pool's close, multiprocessing's temp folders). Only for a process that is about to
    exit: `main` and `iimm worker` call it once `serve_worker` has returned."""
    import gc

    gc.freeze()


def sweep_at_start(settings: Settings) -> None:
    """Remove the working folders of this machine's worker processes that were killed
    (SIGKILL: no clean-up ran): decoding payloads and ingest extractions (`app.workdirs`);
    prune the cache of a remote store of what the store no longer has, of what was not used
    for the retention, and down to its bound (`app.artifacts.cache`)."""
    from workers.ml.data.pool import sweep_payload_dirs
    from workers.tasks.ingest import sweep_work_dirs

    sweep_payload_dirs()
    sweep_work_dirs(settings)
    try:
        Storage.for_settings(settings).cache.prune(check_sources=True)
    except Exception as exc:  # the store is away: the first job's prune tries again
        log.warning("pruning the artifact cache failed: %s", exc)


def serve_worker(queues: list[str], settings: Settings) -> None:
    """The embedded worker's main loop, stopped by SIGTERM/SIGINT (and, when started by
    `iimm serve`, by the death of that process: ``IIMM_PARENT_PID``)."""
    channel = os.environ.get(STOP_FD_ENV, "")
    STOP.install(settings.worker_stop_grace_s, int(channel) if channel.isdigit() else None)
    sweep_at_start(settings)
    parent = os.environ.get("IIMM_PARENT_PID")
    if parent and parent.isdigit():
        from workers.lifeline import die_with_parent

        # the kernel's SIGTERM is the one stop signal; the check's request is not a second
        die_with_parent(int(parent), sig=signal.SIGTERM, on_orphan=STOP.request_quietly)
    try:
        poll_forever(queues)
    finally:
        STOP.done.set()


if __name__ == "__main__":
    main()
