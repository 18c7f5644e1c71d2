"""Child processes that die with their parent, even when the parent is killed with SIGKILL.

A process killed with SIGKILL runs no clean-up, so its children must notice on their own.
On Linux, ``prctl(PR_SET_PDEATHSIG, sig)`` makes the kernel send `sig` to the child when the
parent thread that created it exits; everywhere, a daemon thread of the child compares
``os.getppid()`` with the parent's pid once a second (a re-parented orphan sees another pid)
and ends the process. The thread is the fallback for systems without ``prctl`` and covers a
parent that died before the child asked for the signal.

Used by the decoding workers (`workers.ml.data.pool`, DataLoader ``worker_init_fn``) and by
the embedded worker that `iimm serve` starts (`workers.runner`), and by the `iimm serve` that
`iimm demo` starts (`exec_with_parent_death_signal`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
CHECK_INTERVAL_S = 1.0


def _set_pdeathsig(sig: int) -> bool:
    """Ask the kernel for `sig` when our parent exits; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(
    parent_pid: int, *, sig: int = signal.SIGKILL, on_orphan: Callable[[], None] | None = None
) -> None:
    """Make this process end when process `parent_pid` (its parent) ends.

    `sig` is what the kernel sends (SIGKILL: no clean-up; SIGTERM: the process's own
    handler runs). If the parent is already gone, or goes later without the kernel's signal
    arriving, the watch thread calls `on_orphan` (default: ``os._exit(1)``, which waits
    for nothing: a decoding worker may be blocked writing to a pipe nobody reads).
    """
    _set_pdeathsig(sig)
    act = on_orphan or _exit_now

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(CHECK_INTERVAL_S)
        log.warning("parent process %s is gone: exiting", parent_pid)
        act()

    if os.getppid() != parent_pid:  # it died before we asked for the signal
        act()
        return
    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def exec_with_parent_death_signal(parent_pid: int, sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``subprocess.Popen(preexec_fn=...)`` that has the kernel send `sig` to the child
    when `parent_pid` (the caller, ``os.getpid()``) exits, and ends the child at once if
    that parent is already gone. For children that cannot call `die_with_parent` themselves
    (another program, or one whose start-up must not change); Linux only, a no-op elsewhere.
    """

    def before_exec() -> None:
        _set_pdeathsig(sig)
        if os.getppid() != parent_pid:
            os._exit(1)

    return before_exec


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # as the shell reports a process ended by `signum`


def _exit_now() -> None:
    os._exit(1)


class DecodeWorkerInit:
    """A DataLoader ``worker_init_fn``: dies with the loader's process (SIGKILL), sets its
    stop signals apart from that process's, then `inner`.

    A forked worker inherits the loader process's Python signal handlers and wakeup fd
    (`workers.runner.Stopper`): a signal it got was written into its parent's pipe and
    counted there as one more stop signal. Here the wakeup fd is dropped, SIGINT ignored
    (a terminal's Ctrl-C reaches the whole foreground process group: the workers are the
    loader process's to stop, by closing its pool, SIGTERM or its death, not PyTorch's
    worker loop ending on a KeyboardInterrupt mid-run) and SIGTERM (``Process.terminate``,
    or a signal to the whole group or cgroup) exits through ``SystemExit``, so that
    multiprocessing's clean-up runs: a worker that sent tensors has a ``pymp-*`` folder
    (its fd-passing listener) that only that clean-up removes.

    Picklable (for the spawn start method) when `inner` is a module-level function.
    """

    def __init__(self, inner: Callable[[int], None] | None, parent_pid: int) -> None:
        self.inner, self.parent_pid = inner, parent_pid

    def __call__(self, worker_id: int) -> None:
        die_with_parent(self.parent_pid)
        if threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, _exit_on_signal)
        if self.inner is not None:
            self.inner(worker_id)
