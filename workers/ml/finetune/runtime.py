"""Device choice, determinism, bf16 autocast and data loaders for the training loop."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

Data = Dataset[Any] | DataLoader[Any]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available")
    return resolved


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` for the block on CPU (where bit-identical reruns
    are promised), restored afterwards. On CUDA nothing changes: deterministic kernels (and
    ``CUBLAS_WORKSPACE_CONFIG``) cost speed, and bf16 autocast is not bit-reproducible anyway."""
    if device.type != "cpu":
        yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # warn, never fail a job
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block on CPU (0 or another device: no
    change), restored afterwards. Results do not depend on it beyond float rounding."""
    before = torch.get_num_threads()
    if device.type == "cpu" and threads > 0 and threads != before:
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)
        return
    yield


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; full precision (and bit-reproducible) on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def dataset_of(data: Data) -> Dataset[Any]:
    """The Dataset behind ``data`` (a Dataset or a DataLoader)."""
    return data.dataset if isinstance(data, DataLoader) else data


def train_loader(
    data: Data, batch_size: int, generator: torch.Generator, num_workers: int = 0
) -> DataLoader[Any]:
    """A shuffling loader whose order comes only from ``generator`` (checkpointed), keeping a
    given DataLoader's ``collate_fn``."""
    collate = data.collate_fn if isinstance(data, DataLoader) else None
    return DataLoader(
        dataset_of(data),
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        num_workers=num_workers,
        collate_fn=collate,
    )


def eval_loader(data: Data, batch_size: int) -> DataLoader[Any]:
    """``data`` itself when it is a DataLoader, else an in-order loader over it."""
    if isinstance(data, DataLoader):
        return data
    return DataLoader(data, batch_size=batch_size, shuffle=False)
