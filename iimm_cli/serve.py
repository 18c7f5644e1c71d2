"""`iimm serve`: the API and (embedded mode) a worker process, with no servers to install."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the `serve` and `worker` subcommands."""
    p = sub.add_parser("serve", help="run the API (and, embedded, a worker)")
    p.add_argument("--data-dir", default=None, help="data directory (default ./var)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-worker", action="store_true", help="do not start a worker process")
    p.set_defaults(handler=run_serve)
    w = sub.add_parser("worker", help="run an embedded (database-polling) worker")
    w.add_argument("--data-dir", default=None)
    w.add_argument("queues", nargs="*", default=["gpu", "cpu"])
    w.set_defaults(handler=run_worker)


def _env(data_dir: str | None) -> dict[str, str]:
    if data_dir:
        os.environ["IIMM_DATA_DIR"] = str(Path(data_dir).resolve())
    return dict(os.environ)


class WorkerSupervisor:
    """Keeps one embedded worker process alive (restarted if it dies) until stopped."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.proc = env, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "workers.runner"], env=self.env)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.proc = self._spawn()
            while self.proc.poll() is None and not self._stop.wait(1.0):
                pass

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run_serve(args: argparse.Namespace) -> int:
    """Migrate (embedded), start the worker, serve the API until interrupted."""
    import uvicorn

    from app.config import get_settings
    from app.main import create_app, prepare_database

    env = _env(args.data_dir)
    get_settings.cache_clear()
    settings = get_settings()
    if settings.mode == "embedded":
        prepare_database(settings)
    supervisor = None
    if not args.no_worker and not settings.uses_broker:
        supervisor = WorkerSupervisor(env)
        supervisor.start()
    print(f"IIMM API on http://{args.host}:{args.port} (docs: /docs); data in {settings.data_dir}")
    try:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def run_worker(args: argparse.Namespace) -> int:
    """Run the embedded worker in this process."""
    import logging

    _env(args.data_dir)
    from app.config import get_settings

    get_settings.cache_clear()
    logging.basicConfig(level=get_settings().log_level)
    from workers.runner import poll_forever

    poll_forever(list(args.queues))
    return 0
