"""`iimm serve`: the API and (embedded mode) a worker process, with no servers to install."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import FrameType
from typing import Any

STOP_FD_ENV = "IIMM_STOP_FD"  # = workers.runner.STOP_FD_ENV (not imported: a heavy module)


def register(sub: Any) -> None:
    """Add the `serve` and `worker` subcommands."""
    p = sub.add_parser("serve", help="run the API (and, embedded, a worker)")
    p.add_argument("--data-dir", default=argparse.SUPPRESS, help="data directory (default ./var)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-worker", action="store_true", help="do not start a worker process")
    p.set_defaults(handler=run_serve)
    w = sub.add_parser("worker", help="run an embedded (database-polling) worker")
    w.add_argument("--data-dir", default=argparse.SUPPRESS)
    w.add_argument("queues", nargs="*", default=["gpu", "cpu"])
    w.set_defaults(handler=run_worker)


def _env(data_dir: str | None) -> dict[str, str]:
    if data_dir:
        os.environ["IIMM_DATA_DIR"] = str(Path(data_dir).resolve())
    return dict(os.environ)


class WorkerSupervisor:
    """Keeps one embedded worker process alive until stopped.

    A worker that crashed or was killed is started again (after a pause that grows while
    restarts keep failing); one that exited with status 0 was told to stop and is not. After
    `request_stop` nothing new is started. The worker is asked to stop through a pipe
    (``IIMM_STOP_FD``: we close our end), not a signal: a signal sent to our whole process
    group (Ctrl-C in a terminal, ``kill -TERM -<pgid>``, systemd's KillMode=control-group)
    reaches it too, and a forwarded signal would be a second one, which `workers.runner`
    takes as "stop now" (no clean-up of a normal exit). The worker knows our pid
    (``IIMM_PARENT_PID``) and stops when this process dies, even by SIGKILL (the pipe's end
    of file comes then too).
    """

    def __init__(self, env: dict[str, str], grace_s: float) -> None:
        self.env = {**env, "IIMM_PARENT_PID": str(os.getpid())}
        self.grace_s = grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop_fd: int | None = None  # write end of the running worker's stop pipe
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="iimm-worker-supervisor")

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:  # no start after (or during) a stop request
            if self._stop.is_set():
                return None
            self._close_stop_fd()
            read, self._stop_fd = os.pipe()  # neither end is inherited unless passed
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "workers.runner"], pass_fds=(read,),
                    env={**self.env, STOP_FD_ENV: str(read)},
                )  # fmt: skip
            finally:
                os.close(read)
            return self.proc

    def _close_stop_fd(self) -> None:
        fd, self._stop_fd = self._stop_fd, None
        if fd is not None:
            os.close(fd)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            proc = self._spawn()
            if proc is None:
                return
            while proc.poll() is None and not self._stop.wait(0.5):
                pass
            if self._stop.is_set():
                # this thread started the worker: the kernel sends the worker SIGTERM when it
                # ends (PR_SET_PDEATHSIG, `workers.lifeline`), which would be a second stop
                # signal (a hard stop) if it came while the worker is still stopping
                proc.wait()
                return
            if proc.poll() == 0:
                return
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            print(f"iimm: worker exited with status {proc.returncode}; restarting", flush=True)
            self._stop.wait(min(30.0, 0.5 * 2**failures) if failures > 1 else 0.0)

    def start(self) -> None:
        """Start the worker (and the thread that watches it)."""
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the worker to stop (it gives its job back) and start no other."""
        with self._lock:
            self._stop.set()
            self._close_stop_fd()

    def stop(self) -> None:
        """`request_stop`, then wait for the worker (killed if it outlives its grace)."""
        self.request_stop()
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(timeout=self.grace_s + 3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _with_worker(app: Any, supervisor: WorkerSupervisor) -> None:
    """Run `supervisor` for the lifetime of `app` (its lifespan): started after the API's
    start-up, stopped before its shutdown. uvicorn re-raises SIGTERM once it has shut down,
    so code after `uvicorn.run` never runs; the lifespan's shutdown does."""
    import anyio.to_thread

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            supervisor.start()
            try:
                yield state
            finally:
                await anyio.to_thread.run_sync(supervisor.stop)

    app.router.lifespan_context = lifespan


def run_serve(args: argparse.Namespace) -> int:
    """Migrate (embedded), start the worker, serve the API until SIGTERM or SIGINT."""
    import uvicorn

    from app.config import get_settings
    from app.main import create_app, prepare_database

    env = _env(getattr(args, "data_dir", None))
    get_settings.cache_clear()
    settings = get_settings()
    if settings.mode == "embedded":
        prepare_database(settings)
    app = create_app(settings)
    supervisor = None
    if not args.no_worker and not settings.uses_broker:
        supervisor = WorkerSupervisor(env, settings.worker_stop_grace_s)
        _with_worker(app, supervisor)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if supervisor is not None:  # at once: the worker stops while requests drain
                supervisor.request_stop()
            super().handle_exit(sig, frame)

    print(f"IIMM API on http://{args.host}:{args.port} (docs: /docs); data in {settings.data_dir}")
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5
    )
    Server(config).run()
    return 0


def run_worker(args: argparse.Namespace) -> int:
    """Run the embedded worker in this process."""
    import logging

    _env(getattr(args, "data_dir", None))
    from app.config import get_settings

    get_settings.cache_clear()
    logging.basicConfig(level=get_settings().log_level)
    from workers.runner import before_exit, serve_worker

    serve_worker(list(args.queues), get_settings())
    before_exit()
    return 0
