"""Every private PyTorch DataLoader attribute the decoding pool relies on, in one place.

`pool.DecodePool` keeps one persistent-worker DataLoader per process and serves every
embedding run with it (no fork per run). PyTorch exposes no public API for what that needs:

- the loader's current multi-process iterator (``DataLoader._iterator``), to reuse it, find
  it broken, and forget it so that the next ``iter(loader)`` starts new workers;
- the iterator's worker processes (``_MultiProcessingDataLoaderIter._workers``) and their
  shutdown (``._shutdown_workers()``);
- registering the workers' pids with PyTorch's SIGCHLD handler only while a run is served
  (``torch.utils.data._utils.signal_handling._set_worker_pids`` / ``_remove_worker_pids``
  and the iterator's ``_worker_pids_set`` flag).

These are read here and nowhere else. They have been stable for years, but nothing promises
it: `TESTED_TORCH` lists the versions checked, `missing()` says what a torch lacks, and
tests/workers/ml/test_torch_internals.py fails on any other torch until someone checks
this module against it (and the pool's tests pass) and adds the version.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import dataloader as _dataloader
from torch.utils.data._utils import signal_handling as _signal_handling

#: ``major.minor`` of the torch releases this module was checked against.
TESTED_TORCH = frozenset({"2.14"})


def torch_minor() -> str:
    """The running torch's ``major.minor`` (e.g. ``"2.14"``)."""
    return ".".join(torch.__version__.split("+")[0].split(".")[:2])


def missing() -> list[str]:
    """The private names this module uses that the running torch does not have (empty when
    all are there). Instance attributes are checked on a real iterator by the tests."""
    wanted = [
        (_dataloader, "_MultiProcessingDataLoaderIter"),
        (_signal_handling, "_set_worker_pids"),
        (_signal_handling, "_remove_worker_pids"),
    ]
    gone = [f"{owner.__name__}.{name}" for owner, name in wanted if not hasattr(owner, name)]
    iterator_class = getattr(_dataloader, "_MultiProcessingDataLoaderIter", None)
    if iterator_class is not None and not hasattr(iterator_class, "_shutdown_workers"):
        gone.append("_MultiProcessingDataLoaderIter._shutdown_workers")
    return gone


def current_iterator(loader: DataLoader[Any]) -> Any | None:
    """The persistent iterator of a ``persistent_workers=True`` loader (None before the
    first ``iter(loader)`` or after `forget_iterator`)."""
    return loader._iterator


def forget_iterator(loader: DataLoader[Any]) -> None:
    """Drop the loader's iterator: the next ``iter(loader)`` starts new worker processes."""
    loader._iterator = None


def worker_processes(iterator: Any) -> list[multiprocessing.Process]:
    """The worker processes of a multi-process DataLoader iterator."""
    return list(iterator._workers)


def shutdown_workers(iterator: Any) -> None:
    """Stop an iterator's worker processes (PyTorch's own orderly shutdown)."""
    iterator._shutdown_workers()


def watch_workers(iterator: Any, on: bool) -> None:
    """Register (``on``) or unregister the iterator's workers with PyTorch's SIGCHLD handler,
    which raises in the main thread as soon as a registered worker dies."""
    if on and not iterator._worker_pids_set:
        pids = tuple(w.pid for w in iterator._workers)
        _signal_handling._set_worker_pids(id(iterator), pids)
        iterator._worker_pids_set = True
    elif not on and iterator._worker_pids_set:
        _signal_handling._remove_worker_pids(id(iterator))
        iterator._worker_pids_set = False


if gone := missing():  # fail at import, naming what changed, not mid-run
    raise ImportError(
        f"torch {torch.__version__} lacks {', '.join(gone)}, which the decoding pool uses"
        " (workers/ml/data/torch_internals.py); pin torch to a tested version"
        f" ({', '.join(sorted(TESTED_TORCH))})"
    )
