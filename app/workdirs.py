"""Working folders that name their owner, so a sweep removes exactly those nobody uses.

A process killed with SIGKILL runs no clean-up and leaves its working folders behind; a sweep
by age could remove the folder of a long decode that is still reading it. So a folder's name
says who owns it: ``<prefix><pid>-<start>-<space>-[<job id>.<attempt>-]<random>``, where

- `pid` and `start` (the process's start time in clock ticks since boot, Linux
  ``/proc/<pid>/stat``; 0 where unknown) identify the process: a pid that was reused by
  another process has another start time;
- `space` names the process's pid namespace on this boot (a digest of the kernel's boot id
  and ``/proc/self/ns/pid``; of the host name where those are missing): containers sharing
  a volume each see their own pids, so only a process of the same space can judge a pid;
- `<job id>.<attempt>`, for a job's folder, the attempt that owns it.

`sweep_owned_dirs` removes a folder when its owner is of this space and dead (pid gone or
reused), or when `job_over` says its attempt no longer holds the job (the job finished, was
deleted, or another attempt has it), which any process with the database can judge.
Names that do not follow the pattern are left alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger("iimm.workdirs")


@dataclass(frozen=True)
class Owner:
    """The owner a folder's name records (`job_id` and `attempt` for a job's folder)."""

    pid: int
    start: int  # 0: unknown (a pid-only check)
    space: str  # "": a legacy name without one (judged as this space's)
    job_id: str | None = None
    attempt: int | None = None


def process_start(pid: int) -> int | None:
    """Process `pid`'s start time in clock ticks since boot, 0 where this system does not
    tell, None if there is no such process (or only its zombie, killed and not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else _start_unknown(pid)
    except OSError:
        return _start_unknown(pid)
    fields = stat.rsplit(")", 1)[-1].split()  # the command name (field 2) may hold spaces
    if fields and fields[0] in ("Z", "X"):  # field 3, the state: zombie or dead
        return None
    try:
        return int(fields[19])  # field 22
    except (IndexError, ValueError):
        return 0


def _start_unknown(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # someone else's process
        return 0
    return 0


@cache
def space() -> str:
    """This process's pid namespace on this boot, as 8 hex digits."""
    parts = []
    for read in (
        lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        lambda: os.readlink("/proc/self/ns/pid"),
    ):
        try:
            parts.append(read())
        except OSError:
            parts = []
            break
    ident = "|".join(parts) if parts else socket.gethostname()
    return hashlib.sha256(ident.encode()).hexdigest()[:8]


def owner_prefix(prefix: str, *, job: tuple[str, int] | None = None) -> str:
    """The name prefix of a folder owned by this process (and by `job`: id, attempt)."""
    pid = os.getpid()
    start = process_start(pid) or 0
    tail = f"{job[0]}.{job[1]}-" if job else ""
    return f"{prefix}{pid}-{start}-{space()}-{tail}"


def make_owned_dir(
    root: str | Path | None, prefix: str, *, job: tuple[str, int] | None = None
) -> Path:
    """A new folder under `root` (default: the system temp folder) owned by this process
    (and by `job`: its id and attempt), for `sweep_owned_dirs` to judge."""
    return Path(tempfile.mkdtemp(prefix=owner_prefix(prefix, job=job), dir=root))


def parse_owner(name: str, prefix: str) -> Owner | None:
    """The owner recorded in folder name `name`, None if it records none. Also reads the
    older ``<prefix><pid>-<random>`` (pid only)."""
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split("-")
    if len(parts) == 2 and parts[0].isdigit():
        return Owner(int(parts[0]), 0, "")
    if len(parts) not in (4, 5) or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    job_id = attempt = None
    if len(parts) == 5:
        job_id, _, number = parts[3].rpartition(".")
        if not job_id or not number.isdigit():
            return None
        attempt = int(number)
    return Owner(int(parts[0]), int(parts[1]), parts[2], job_id, attempt)


def owner_dead(owner: Owner) -> bool:
    """Whether `owner` is known to be gone: a process of this space whose pid is free or
    now another process's. False when this process cannot tell (another space)."""
    if owner.space and owner.space != space():
        return False
    start = process_start(owner.pid)
    if start is None:
        return True
    return bool(owner.start and start and start != owner.start)


def sweep_owned_dirs(
    root: str | Path | None,
    prefix: str,
    *,
    job_over: Callable[[list[tuple[str, int]]], set[tuple[str, int]]] | None = None,
) -> list[Path]:
    """Remove the folders `<root>/<prefix>*` whose owner is dead (`owner_dead`) or, given
    `job_over` (which of these (job id, attempt) no longer hold their job), whose attempt
    is over; returns what was removed. `root` defaults to the system temp folder."""
    found: list[tuple[Path, Owner]] = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{prefix}*"):
        owner = parse_owner(path.name, prefix)
        if owner is not None and path.is_dir():
            found.append((path, owner))
    attempts = [(o.job_id, o.attempt) for _, o in found if o.job_id and o.attempt is not None]
    over = job_over(attempts) if job_over and attempts else set()
    removed = []
    for path, owner in found:
        if owner_dead(owner) or (owner.job_id, owner.attempt) in over:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d working folder(s) of processes or jobs that are gone", len(removed))
    return removed
