"""Decoding processes that outlive one embedding run.

A DataLoader forks its workers when iterated. Each fork copies the parent's page tables: 20
to 35 ms for this project's worker process on CPU (0.8-1.4 GB resident), more with a CUDA
context, and the forks run one after the other, so 15 workers cost the GPU about half a
second of idle time per run, a quarter of a 65,536-image run of ViT-B-32 on an H200. A
service runs many runs per process (every model x dataset of an evaluation matrix).

`DecodePool` keeps one DataLoader with ``persistent_workers=True`` whose dataset,
`RunDispatch`, is a stand-in: every batch it is asked for is a `Task` that names the run's
real dataset (pickled once per run to a file; sources pickle by reference) and its rows.
A worker unpickles a dataset the first time it sees it (and keeps it while runs use the same
one) and decodes the batch with it. PyTorch's own machinery still does the rest: ordering,
prefetching, pinned memory, worker death and parent death. Between runs the DataLoader's
epoch reset drains what an interrupted run left queued; tasks of a run that has ended are
answered without decoding (`STALE`).

Cost: each worker keeps the last dataset it served until another one arrives. For sources
that read files (image folders, archives, manifests) that is the list of items; a
torchvision dataset held in memory (CIFAR, MNIST, SVHN: up to 180 MB) is loaded by every
worker from its files, once, and kept, which makes later runs on it (other models of an
evaluation matrix) start at once. Workers also share, copy-on-write, the memory the process
had when they were forked (a model it unloads later stays mapped in them); a configuration
change or `close_pool` releases them.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import multiprocessing
import os
import pickle
import shutil
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.workdirs import make_owned_dir, sweep_owned_dirs
from workers.lifeline import DecodeWorkerInit
from workers.ml.data import torch_internals as internals
from workers.ml.data.tensor_decode import passthrough

STALE = ("stale", [], [])  # a batch of a run that has ended, returned instead of decoding
DIR_PREFIX = "iimm-decode-"  # + the owning process (`app.workdirs`): payload files of one pool


def sweep_payload_dirs(root: str | None = None) -> list[Path]:
    """Remove the payload folders of pools whose process is gone (killed with SIGKILL: no
    clean-up ran; `app.workdirs`: pid gone or reused); returns what was removed. `root`
    defaults to the temp directory."""
    return sweep_owned_dirs(root, DIR_PREFIX)


@dataclass(frozen=True)
class Task:
    """One batch of one run: rows `indices` of the dataset pickled at `payload`."""

    run: int
    payload: str
    key: str  # digest of the payload: the same dataset is unpickled once per worker
    indices: list[int]


class RunDispatch(torch.utils.data.Dataset):
    """The pool's dataset: decodes a `Task` with the run's dataset (loaded on first sight)."""

    def __init__(self, current: Any) -> None:
        self.current = current  # shared int: the run now being served (0: none)
        self._key = ""
        self._dataset: Any = None

    def __getitems__(self, task: Task) -> Any:
        if task.run != self.current.value:
            return STALE
        if task.key != self._key:
            try:
                with open(task.payload, "rb") as file:
                    self._dataset = pickle.load(file)
            except OSError:
                if task.run != self.current.value:  # the run ended while we opened it
                    return STALE
                raise
            self._key = task.key
        return self._dataset.__getitems__(task.indices)

    def __getitem__(self, index: int) -> Any:
        raise TypeError("RunDispatch serves whole batches (Task), not single items")


class _Tasks:
    """The DataLoader's batch sampler: the current run's tasks, replaced for every run."""

    def __init__(self) -> None:
        self.tasks: list[Task] = []

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


class DecodePool:
    """Persistent DataLoader workers serving the batches of successive runs in order."""

    def __init__(
        self, workers: int, *, pin_memory: bool, worker_init_fn: Callable[[int], None] | None
    ) -> None:
        self.config = (workers, pin_memory, worker_init_fn)
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.current = multiprocessing.RawValue("q", 0)
        self.runs = 0
        self.tasks = _Tasks()
        sweep_payload_dirs()
        self.dir = make_owned_dir(None, DIR_PREFIX)
        self.loader = torch.utils.data.DataLoader(
            RunDispatch(self.current), batch_sampler=self.tasks, num_workers=workers,
            collate_fn=passthrough, pin_memory=pin_memory, persistent_workers=True,
            prefetch_factor=4, worker_init_fn=DecodeWorkerInit(worker_init_fn, self.pid),
        )  # fmt: skip

    def batches(self, dataset: Any, batches: Sequence[Sequence[int]]) -> Generator[Any, None, None]:
        """The batches of `dataset` (an object with ``__getitems__``), decoded in order.

        The dataset is pickled here, before anything starts (a dataset that cannot be
        pickled raises now, and the caller can use a DataLoader of its own). Ending the
        iteration early (an error, a cancelled run) is safe: the rest of this run's queued
        batches are skipped by the workers and drained by the next run.
        """
        data = pickle.dumps(dataset, protocol=pickle.HIGHEST_PROTOCOL)
        key = hashlib.sha256(data).hexdigest()
        payload = self.dir / f"{key}.pkl"
        if not payload.is_file():
            tmp = payload.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(payload)
        self.runs += 1
        self.tasks.tasks = [Task(self.runs, str(payload), key, list(rows)) for rows in batches]
        return self._serve(payload, len(self.tasks.tasks))

    def _serve(self, payload: Path, count: int) -> Generator[Any, None, None]:
        self.current.value = self.runs
        iterator = self._start()
        _watch(iterator, True)
        try:
            for _ in range(count):  # exactly this run's batches: the iterator stays open
                yield next(iterator)
        finally:
            self.current.value = 0  # whatever is still queued is now stale
            _watch(iterator, False)
            for old in self.dir.glob("*.pkl"):
                if old != payload:
                    old.unlink(missing_ok=True)

    def _start(self) -> Any:
        """The loader's iterator for a new run: the first run starts the workers, later ones
        reset them; new workers when one died since the last run (OOM killer, kill), found
        before the reset or by it (the reset waits for every worker and names a dead one)."""
        iterator = internals.current_iterator(self.loader)
        if iterator is not None and not _all_alive(iterator):
            self.stop_workers()
        try:
            return iter(self.loader)
        except RuntimeError as exc:
            if internals.current_iterator(self.loader) is None or "DataLoader worker" not in str(
                exc
            ):
                raise
            self.stop_workers()
            return iter(self.loader)

    def stop_workers(self) -> None:
        """Shut the worker processes down (the next run starts new ones)."""
        iterator = internals.current_iterator(self.loader)
        if iterator is not None and self.pid == os.getpid():
            _watch(iterator, False)  # exiting (or already dead) workers must not raise here
            internals.shutdown_workers(iterator)
        internals.forget_iterator(self.loader)

    def close(self) -> None:
        """Stop the workers and remove the payload files."""
        self.stop_workers()
        shutil.rmtree(self.dir, ignore_errors=True)


def _watch(iterator: Any, on: bool) -> None:
    """Register (or not) the workers with PyTorch's SIGCHLD handler, which raises in the main
    thread as soon as a registered worker dies: right during a run (the run fails, naming
    the worker), wrong between runs (it would raise in whatever the process does next), so
    the pids are registered only while a run is served, and a run first checks its workers.
    """
    internals.watch_workers(iterator, on)


_POOL: DecodePool | None = None
_POOL_LOCK = threading.Lock()


@contextlib.contextmanager
def shared_pool(
    workers: int, *, pin_memory: bool, worker_init_fn: Callable[[int], None] | None
) -> Iterator[DecodePool | None]:
    """This process's pool for `workers` workers, held for one run; None when it is busy
    with another run (a second thread), so that the caller starts a DataLoader of its own.

    One pool per process: asking for another configuration replaces it. A pool inherited
    through a fork belongs to the parent and is never used (nor closed) by the child.
    """
    global _POOL
    config = (workers, pin_memory, worker_init_fn)
    with _POOL_LOCK:
        pool = _POOL
        if pool is not None and pool.pid != os.getpid():
            pool = _POOL = None  # the parent's workers, not ours
        if pool is not None and not pool.lock.acquire(blocking=False):
            pool = None  # busy: this run gets its own DataLoader
        elif pool is not None and pool.config != config:
            pool.close()
            pool.lock.release()
            pool = _POOL = None
        if _POOL is None:
            pool = _POOL = DecodePool(workers, pin_memory=pin_memory, worker_init_fn=worker_init_fn)
            pool.lock.acquire()
    if pool is None:
        yield None
        return
    try:
        yield pool
    except BaseException:
        with _POOL_LOCK:  # a worker died or the loader broke: start afresh next time
            if _POOL is pool and not _healthy(pool):
                pool.close()
                _POOL = None
        raise
    finally:
        pool.lock.release()


def _healthy(pool: DecodePool) -> bool:
    iterator = internals.current_iterator(pool.loader)
    return iterator is None or _all_alive(iterator)


def _all_alive(iterator: Any) -> bool:
    """Whether every worker process of a DataLoader iterator is alive."""
    return all(w.is_alive() for w in internals.worker_processes(iterator))


def remove_payload_dir() -> None:
    """Remove this process's payload folder without stopping the workers (a process about to
    exit with ``os._exit``: its workers die with it)."""
    pool = _POOL
    if pool is not None and pool.pid == os.getpid():
        shutil.rmtree(pool.dir, ignore_errors=True)


@atexit.register
def close_pool() -> None:
    """Stop this process's decoding workers (at exit, and for tests)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL.pid == os.getpid():
            _POOL.close()
        _POOL = None
