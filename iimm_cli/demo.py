"""`iimm demo`: the paper's loop on the embedded service, end to end through the REST API.

Starts the embedded service (`iimm serve`: SQLite, local artifacts, a database-polling
worker), registers the `reference` preset (the dual encoder trained in this repository),
uploads the reference suite, assesses every task, fine-tunes about half of them with equal
step budgets, prints the accuracy matrix, the predictors against IIMM and against zero-shot
accuracy, the comparison of every measure, and predicted beside measured gain for the other
half (`iimm_cli.demo_loop`, `iimm_cli.demo_report`); then the dashboard URL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from iimm_cli._common import CliError


def register(sub: Any) -> None:
    """Add the `demo` subcommand."""
    from iimm_cli.demo_loop import LoopConfig

    d = LoopConfig()
    p = sub.add_parser("demo", help="the paper's loop on the reference model over the REST API")
    p.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="keep the service's data here (default: a temp dir)",
    )
    p.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    p.add_argument("--per-class", type=int, default=d.per_class, help="suite images per class")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="fine-tuning steps a task")
    p.add_argument("--bootstrap", type=int, default=d.bootstrap, help="bootstrap resamples")
    p.add_argument("--keep-serving", action="store_true", help="leave the service running")
    p.set_defaults(handler=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_BOUND_S = 30.0  # `iimm serve` stops in seconds; past this its process group is killed


def _launch(data_dir: Path, port: int, command: Sequence[str] | None) -> subprocess.Popen[bytes]:
    """`iimm serve` (or `command`) in a process group of its own (a terminal's Ctrl-C reaches
    only the demo, which stops the service: `stop_service`), with the kernel's parent-death
    signal (`workers.lifeline`)."""
    from workers.lifeline import exec_with_parent_death_signal

    env = {"IIMM_LOG_LEVEL": "WARNING", **os.environ, "IIMM_DATA_DIR": str(data_dir)}
    cmd = list(command or [sys.executable, "-m", "iimm_cli", "serve", "--port", str(port)])
    lifeline = exec_with_parent_death_signal(os.getpid())

    def before_exec() -> None:  # the child starts with the signals the caller blocked
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        lifeline()

    return subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, preexec_fn=before_exec
    )


def _wait_answering(proc: subprocess.Popen[bytes], port: int) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CliError(f"the service exited with code {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise CliError("the service did not start within 120 s")


def start_service(
    data_dir: Path, port: int, command: Sequence[str] | None = None
) -> subprocess.Popen[bytes]:
    """`iimm serve` (or `command`, which must answer ``/healthz`` on `port`) in a child
    process that gets SIGTERM when this process exits, even by SIGKILL (Linux's parent-death
    signal, `workers.lifeline`); returns once it answers. Raises CliError if it exits or
    does not answer within 120 s."""
    proc = _launch(data_dir, port, command)
    try:
        _wait_answering(proc, port)
    except BaseException:
        stop_service(proc)
        raise
    return proc


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether `proc` has exited, without reaping it: while it is a zombie its process
    group id cannot be taken by another process, so the group can still be signalled."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.returncode is None:  # not reaped: the group id is still ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def stop_service(proc: subprocess.Popen[bytes], bound_s: float = STOP_BOUND_S) -> None:
    """Stop `iimm serve` as `kill` would: SIGTERM to its pid, so its own shutdown runs (the
    API drains, the embedded worker gets one SIGTERM, gives its job back, closes its
    decoding processes and removes their temp folders); then SIGKILL whatever of its
    process group is left (everything once `bound_s` has passed) and reap it.

    Not the whole group: a SIGTERM to the worker besides the one `iimm serve` sends it counts
    as a second signal there, which exits at once without that clean-up (`workers.runner`).
    A SIGTERM, SIGINT or SIGHUP to the demo meanwhile kills the group at once."""
    previous = {s: signal.signal(s, lambda *_: _kill_group(proc)) for s in STOP_SIGNALS}
    try:
        if not _exited(proc):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + bound_s
        while not _exited(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
        _kill_group(proc)
        proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def running_service(
    data_dir: Path, port: int, command: Sequence[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`start_service`, stopped (`stop_service`) when the block ends, also on SIGTERM, SIGINT
    and SIGHUP (turned into ``SystemExit(128 + signal)`` from the service's launch on, so a
    signal while it starts stops it too)."""
    old = {s: signal.signal(s, _exit_on_signal) for s in STOP_SIGNALS}
    proc = None
    try:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:  # a signal here waits until `proc` is set
            proc = _launch(data_dir, port, command)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _wait_answering(proc, port)
        yield proc
    finally:
        try:
            if proc is not None:
                stop_service(proc)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def run(args: argparse.Namespace) -> int:
    """Start the service, run the loop over HTTP, print the tables, shut down."""
    from iimm_cli.client import ApiClient
    from iimm_cli.demo_loop import LoopConfig, run_loop
    from iimm_cli.demo_report import print_report

    cfg = LoopConfig(per_class=args.per_class, max_steps=args.max_steps, bootstrap=args.bootstrap)
    work = Path(tempfile.mkdtemp(prefix="iimm-demo-"))
    kept_dir = getattr(args, "data_dir", None)
    data_dir = Path(kept_dir).resolve() if kept_dir else work / "var"
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"Starting the embedded IIMM service (data in {data_dir}) ...", flush=True)
    try:
        with running_service(data_dir, port) as proc:
            start = time.monotonic()
            client = ApiClient(url, (data_dir / "admin.key").read_text().strip())
            result = run_loop(client, work, cfg, log=lambda m: print(m, flush=True))
            shutil.rmtree(work / "suite", ignore_errors=True)  # uploaded: a faster stop later
            print_report(result)
            (data_dir / "demo-result.json").write_text(json.dumps(result.to_json(), indent=1))
            print(f"\nLoop done in {(time.monotonic() - start) / 60:.1f} min.")
            board = (
                f"{url}/dashboard (API key in {data_dir / 'admin.key'}; model {result.model['id']})"
            )
            if args.keep_serving:
                print(f"Dashboard: {board}\nServing until Ctrl-C ...", flush=True)
                proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the suite, and the data unless kept
    if not args.keep_serving:
        print(closing_line(kept_dir and str(data_dir), data_dir, _iimm_command()))
    return 0


def _iimm_command() -> str:
    """How to call this installation's `iimm`: ``.venv/bin/iimm`` (relative to the working
    directory when inside it), else the absolute path, else plain ``iimm``."""
    exe = Path(sys.executable).parent / "iimm"
    if not exe.exists():
        return "iimm"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def closing_line(kept_dir: str | None, data_dir: Path, iimm: str, port: int = 8000) -> str:
    """The demo's last line: where its data went and the exact commands that show the figures.

    `kept_dir` is the ``--data-dir`` given (None: the data in `data_dir`, a temp dir, was
    removed); `iimm` is the command to call (`_iimm_command`); `port` the one to suggest.
    """
    board = f"http://127.0.0.1:{port}/dashboard"
    if kept_dir:
        return (
            f"Service stopped; its data is kept in {kept_dir}. To see the figures run "
            f"`{iimm} serve --data-dir {kept_dir} --port {port}` and open {board} "
            f"with the API key in {Path(kept_dir) / 'admin.key'}."
        )
    return (
        f"Service stopped and its data ({data_dir}) removed. To see the figures, run the demo "
        f"with kept data: `{iimm} demo --data-dir ./demo-data --port {port} --keep-serving`, "
        f"then open {board} with the API key in ./demo-data/admin.key."
    )
