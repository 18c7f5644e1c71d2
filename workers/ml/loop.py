"""The batch loop of an embedding run: a DataLoader over a batch-aligned grid, errors handled
by policy, checkpoints written at most every few seconds."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from app.imagedata.errors import ImageDataError
from app.imagedata.layout import DatasetLayout
from workers.lifeline import DecodeWorkerInit
from workers.ml.data.pool import shared_pool
from workers.ml.data.tensor_decode import NATIVE, ImageBatches, passthrough
from workers.ml.gpu_preprocess import from_transform, split_for_device
from workers.ml.models import LoadedModel
from workers.ml.pipeline import BatchPipeline, Pending
from workers.ml.store import PROGRESS, RunArrays, RunState, write_json

# report(fraction, stage, done=..., total=..., unit=...): called after every batch; it may
# raise (a cancelled job's JobCancelledError) to stop the run between batches.
Progress = Callable[..., None]
log = logging.getLogger(__name__)


def batch_grid(start: int, stop: int, batch_size: int) -> list[tuple[int, int]]:
    """Batches of rows start..stop cut at multiples of `batch_size` (positions in the split)."""
    cuts = [start, *range((start // batch_size + 1) * batch_size, stop, batch_size), stop]
    return list(itertools.pairwise(cuts))


def default_workers(device: torch.device, batches: int | None = None) -> int:
    """DataLoader workers: all cores but one (at most 16) with a GPU, where decoding is the
    bottleneck; on CPU at most 4, leaving cores to the forward pass. None for a single batch
    (``batches`` < 2): with nothing to overlap, starting a process only adds its start-up."""
    if batches is not None and batches < 2:
        return 0
    cpus = os.cpu_count() or 1
    return max(1, min(16, cpus - 1)) if device.type == "cuda" else max(1, min(4, cpus - 1))


def lower_priority(worker_id: int) -> None:
    """DataLoader worker init on CPU: decode at a lower priority than the forward pass.

    The forward keeps all its intra-op threads and the workers use the cycles it leaves; on
    a machine with few cores this beats both giving the workers cores of their own and
    running them at equal priority (threads that spin against each other) as long as the
    forward dominates; `ThreadSplit` gives decoding its own cores when it does not.
    """
    with contextlib.suppress(OSError):
        os.nice(10)


@dataclass
class ThreadSplit:
    """On CPU, whether the forward pass shares the cores with the DataLoader workers.

    The forward starts with all its intra-op threads, the workers below it at nice +10: right
    when the forward dominates (ViT-B-32: decoding is about 1% of the work). When the loop
    instead waits for decoded batches (a tiny model, where a forward costs about what a
    decode does), the forward's threads and the workers preempt each other and idle threads
    spin at their barriers, which starves the workers further. The loop's waits are timed
    over windows of `window` batches (the first batch, with the workers' start-up, not
    counted; prefetched batches can hide the problem for a while); the first window that
    spent over `wait_share` of its time waiting drops the forward to ``threads - workers``
    threads for the rest of the run, so that decoding has cores of its own. Results do not
    depend on the thread count (the same bytes with 1 and 2 threads, checked in the tests).
    """

    threads: int  # intra-op threads at the start (restored at the end)
    fewer: int  # the forward's threads when decoding is the bottleneck
    window: int = 4
    wait_share: float = 0.1
    seen: int = 0
    waited: float = 0.0
    since: float = 0.0
    switched: bool = False
    clock: Callable[[], float] = time.perf_counter  # seconds; injected by the tests

    @classmethod
    def for_run(
        cls, device: torch.device, workers: int, clock: Callable[[], float] = time.perf_counter
    ) -> ThreadSplit:
        threads = torch.get_num_threads()
        if device.type != "cpu" or workers < 1:
            return cls(threads, threads, clock=clock)
        return cls(threads, max(1, threads - workers), clock=clock)

    def next(self, batches: Iterator[Any]) -> Any | None:
        """The next batch (None at the end), timing the wait for it until a switch."""
        if self.fewer == self.threads or self.switched:
            return next(batches, None)
        t0 = self.clock()
        batch = next(batches, None)
        now = self.clock()
        self.seen += 1
        if self.seen > 1:
            self.waited += now - t0
        if self.seen % self.window == 1:  # a window ends (or, at the first batch, begins)
            if self.seen > 1 and self.waited > self.wait_share * (now - self.since):
                torch.set_num_threads(self.fewer)
                self.switched = True
            self.since, self.waited = now, 0.0
        return batch

    def restore(self) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


@dataclass
class Stages:
    """Where an embedding run's wall time went (logged at INFO at the end of the run).

    ``loader``: blocked waiting for decoded batches (decode-bound when large); ``submit``:
    the host side of a batch's forward (all of it on CPU; transfer, device preprocessing
    and kernel launches on CUDA); ``device``: waiting for the device to finish a batch
    (device-bound when large); ``store``: the float16 write, zero-shot top-k, statistics and
    checkpoints.
    """

    batches: int = 0
    images: int = 0
    loader: float = 0.0
    submit: float = 0.0
    device: float = 0.0
    store: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    def stop(self) -> None:
        """End the run's wall time: `summary` and `to_dict` then report the same seconds."""
        self.ended = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds from the start to `stop` (to now while not stopped)."""
        return (time.perf_counter() if self.ended is None else self.ended) - self.started

    def to_dict(self, workers: int) -> dict[str, float | int]:
        """The figures of `summary` as numbers (seconds; shares are value / ``seconds``)."""
        # the rate is computed from the rounded seconds, so images / seconds as reported gives it
        total = max(round(self.elapsed(), 4), 1e-4)
        return {
            "images": self.images, "batches": self.batches, "workers": workers,
            "seconds": total, "images_per_second": round(self.images / total, 1),
            **{f"{name}_s": round(getattr(self, name), 4)
               for name in ("loader", "submit", "device", "store")},
        }  # fmt: skip

    def summary(self) -> str:
        """One line: images, batches, wall time, rate and each stage's seconds and share."""
        total = max(self.elapsed(), 1e-9)
        parts = ", ".join(
            f"{name} {getattr(self, name):.2f} s ({getattr(self, name) / total:.0%})"
            for name in ("loader", "submit", "device", "store")
        )
        head = f"{self.images} images in {self.batches} batches, {total:.2f} s"
        return f"{head} ({self.images / total:.0f}/s): {parts}"


@dataclass
class BatchLoop:
    """Runs the remaining batches of rows ``shard`` of a split through a BatchPipeline."""

    model: LoadedModel
    dataset: DatasetLayout
    items: Sequence[Any]
    shard: tuple[int, int]
    batch_size: int
    num_workers: int | None
    on_error: str
    preprocess: str = "cpu"  # "cpu" or "device" (resolved; see workers.ml.gpu_preprocess)
    worker_transform: Callable = field(init=False)
    device_step: Callable | None = field(init=False)

    def __post_init__(self) -> None:
        if self.preprocess == "device":
            # Workers only decode (uint8, native size); resize, crop and normalisation run
            # once per batch on the model's device.
            self.worker_transform, self.device_step = NATIVE, from_transform(self.model.preprocess)
            if self.device_step is None:
                raise ValueError("this model's preprocessing cannot run on the device")
            return
        # Workers stop at uint8 tensors and the main process (or the GPU) normalises whole
        # batches: less work per image in the workers and 4x fewer bytes between processes.
        self.worker_transform, self.device_step = split_for_device(self.model.preprocess)

    def run(self, arrays: RunArrays, labels: np.ndarray, texts: np.ndarray, state: RunState,
            *, out: Path, every_s: float, report: Progress) -> dict[str, Any] | None:  # fmt: skip
        """Encode the batches not yet done; batch i is stored while batch i+1 is encoded.

        Returns where this call's time went (`Stages.to_dict`), None when nothing was left.
        """
        grid = batch_grid(*self.shard, self.batch_size)
        todo = grid[state.batches_done :]
        if not todo:
            return None
        assert state.stats is not None
        workers = (
            default_workers(self.model.device, len(todo))
            if self.num_workers is None
            else self.num_workers
        )
        pipe = BatchPipeline(self.model, arrays, labels, texts.astype(np.float32), state.stats)
        pipe.device_step = self.device_step
        saver = _Checkpointer(out, arrays, state, every_s)
        split = ThreadSplit.for_run(self.model.device, workers)
        stages = Stages()
        with self._batches(todo, workers) as batches:
            self._encode(batches, pipe, split, stages, saver, report, grid)
        stages.device = pipe.device_wait_s
        stages.stop()  # one end for the log line and the figures returned
        log.info("embedding run (%s, %d workers): %s", self.model.device, workers, stages.summary())
        return stages.to_dict(workers)

    def _encode(
        self,
        batches: Iterator[Any],
        pipe: BatchPipeline,
        split: ThreadSplit,
        stages: Stages,
        saver: _Checkpointer,
        report: Progress,
        grid: list[tuple[int, int]],
    ) -> None:
        """Submit each decoded batch, finishing the previous one while it is encoded."""
        state = saver.state
        pending: Pending | None = None
        try:
            while True:
                t0 = time.perf_counter()
                batch = split.next(batches)
                t1 = time.perf_counter()
                stages.loader += t1 - t0
                if batch is None:
                    break
                pixels, index, errors = batch
                start = int(index[0]) - self.shard[0]
                new = pipe.submit(pixels, start, self._errors(index, errors))
                stages.submit += time.perf_counter() - t1
                stages.batches += 1
                stages.images += len(index)
                if pending is not None:
                    self._complete(saver, pipe, pending, stages)
                    self._report(report, grid, state.batches_done)
                pending = new
        finally:
            split.restore()
        if pending is not None:
            self._complete(saver, pipe, pending, stages, force=True)
            self._report(report, grid, state.batches_done)

    def _report(self, report: Progress, grid: list[tuple[int, int]], done: int) -> None:
        """Progress after `done` batches of `grid`, counted in images of the shard."""
        first = self.shard[0]
        report(done / len(grid), "embedding", done=grid[done - 1][1] - first,
               total=self.shard[1] - first, unit="images")  # fmt: skip

    @staticmethod
    def _complete(saver: _Checkpointer, pipe: BatchPipeline, pending: Pending, stages: Stages,
                  *, force: bool = False) -> None:  # fmt: skip
        """Finish a batch, counting the time outside the device wait as storing."""
        t0, waited = time.perf_counter(), pipe.device_wait_s
        saver.complete(pipe, pending, force=force)
        stages.store += time.perf_counter() - t0 - (pipe.device_wait_s - waited)

    @contextlib.contextmanager
    def _batches(self, todo: list[tuple[int, int]], workers: int) -> Iterator[Iterator[Any]]:
        """The decoded batches `todo`, in order: ``(pixels, index, errors)`` each.

        With workers, from this process's persistent pool (`workers.ml.data.pool`: no
        forks per run) unless it is busy or the dataset cannot be pickled, in which case
        from a DataLoader of the run's own.
        """
        ds = ImageBatches(self.dataset.source, self.items, self.worker_transform)
        cuda = self.model.device.type == "cuda"
        init = lower_priority if self.model.device.type == "cpu" else None
        batches = [range(a, b) for a, b in todo]
        if workers < 1:
            yield iter(DataLoader(ds, batch_sampler=batches, collate_fn=passthrough))
            return
        with shared_pool(workers, pin_memory=cuda, worker_init_fn=init) as pool:
            served = None
            if pool is not None:
                try:
                    served = pool.batches(ds, batches)
                except (pickle.PicklingError, TypeError, AttributeError) as exc:
                    log.info("decoding in a DataLoader of this run's own: %s", exc)
            if served is not None:
                try:
                    yield served
                finally:
                    served.close()  # an early end marks the run's queued batches stale
                return
        yield iter(DataLoader(
            ds, batch_sampler=batches, num_workers=workers, collate_fn=passthrough,
            pin_memory=cuda, prefetch_factor=4, persistent_workers=False,
            worker_init_fn=DecodeWorkerInit(init, os.getpid()),
        ))  # fmt: skip

    def _errors(
        self, index: torch.Tensor | Sequence[int], errors: Sequence[str]
    ) -> list[tuple[int, str]]:
        """(row, message) of the batch's undecodable images; raises under on_error="fail"."""
        rows = (int(i) - self.shard[0] for i in index)
        bad = [(r, e) for r, e in zip(rows, errors, strict=True) if e]
        if bad and self.on_error == "fail":
            names = "; ".join(e for _, e in bad[:10])
            raise ImageDataError(f"{len(bad)} undecodable image(s) in this batch: {names} "
                                 "(pass on_error='skip' to leave them out)")  # fmt: skip
        return bad


@dataclass
class _Checkpointer:
    """Finishes batches and saves progress.json at most every `every_s` seconds."""

    out: Path
    arrays: RunArrays
    state: RunState
    every_s: float
    last: float = 0.0

    def __post_init__(self) -> None:
        self.last = time.monotonic()

    def complete(self, pipe: BatchPipeline, pending: Pending, *, force: bool = False) -> None:
        pipe.finish(pending)
        self.state.skipped.extend({"row": r, "error": m} for r, m in pending.errors)
        self.state.batches_done += 1
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            self.arrays.flush()
            write_json(self.out / PROGRESS, self.state.to_dict())
            self.last = now
