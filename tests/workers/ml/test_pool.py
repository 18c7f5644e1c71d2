"""The persistent decoding pool (workers.ml.data.pool): successive runs reuse the same worker
processes and give the bytes of an in-process run; an interrupted run leaks nothing into the
next; a dead worker, a busy pool, an unpicklable dataset and a new configuration each fall
back to fresh workers."""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.imagedata import DatasetLayout, open_dataset
from app.imagedata.layout import FileSource
from workers.ml.data import pool as pool_module
from workers.ml.data import torch_internals as internals
from workers.ml.data.pool import STALE, RunDispatch, Task, close_pool, shared_pool
from workers.ml.data.tensor_decode import NATIVE, ImageBatches
from workers.ml.embed import embed_dataset
from workers.ml.models import LoadedModel
from workers.ml.synth import generate_task

from .test_resume_shards import InterruptError, _same_bytes


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    close_pool()
    yield
    close_pool()


@pytest.fixture(scope="module")
def glyphs(tmp_path_factory: pytest.TempPathFactory) -> DatasetLayout:
    """A second dataset (other images, other size) to alternate with `shapes`."""
    root = generate_task("glyphs", tmp_path_factory.mktemp("glyphs"), per_class=7, seed=3, size=40)
    return open_dataset(root, seed=0)


def _pool_pids() -> list[int]:
    pool = pool_module._POOL
    iterator = None if pool is None else internals.current_iterator(pool.loader)
    assert iterator is not None
    return sorted(w.pid for w in internals.worker_processes(iterator))


def _embed(model: LoadedModel, ds: DatasetLayout, out: Path, workers: int, **kw: Any) -> Path:
    embed_dataset(model, ds, split="train", out_dir=out, batch_size=4, num_workers=workers,
                  resume=False, **kw)  # fmt: skip
    return out


@pytest.mark.parametrize("preprocess", ["cpu", "device"])
def test_runs_reuse_the_workers_and_give_in_process_bytes(
    tiny_model: LoadedModel,
    shapes: DatasetLayout,
    glyphs: DatasetLayout,
    tmp_path: Path,
    preprocess: str,
) -> None:
    refs = {
        name: _embed(tiny_model, ds, tmp_path / f"ref-{name}", 0, preprocess=preprocess)
        for name, ds in (("shapes", shapes), ("glyphs", glyphs))
    }
    pids: list[list[int]] = []
    for k, (name, ds) in enumerate([("shapes", shapes), ("glyphs", glyphs), ("shapes", shapes)]):
        out = _embed(tiny_model, ds, tmp_path / f"pool-{k}", 2, preprocess=preprocess)
        _same_bytes(out, refs[name])
        pids.append(_pool_pids())
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2
    assert all(os.path.exists(f"/proc/{pid}") for pid in pids[0])
    # one payload file is kept (the last dataset's), none of the earlier ones
    assert len(list(pool_module._POOL.dir.glob("*.pkl"))) == 1  # type: ignore[union-attr]


def test_an_interrupted_run_leaks_nothing_into_the_next(
    tiny_model: LoadedModel, shapes: DatasetLayout, glyphs: DatasetLayout, tmp_path: Path
) -> None:
    ref = _embed(tiny_model, glyphs, tmp_path / "ref", 0)

    def stop(fraction: float, stage: str, **units: object) -> None:
        if stage == "embedding" and fraction > 0.1:
            raise InterruptError

    with pytest.raises(InterruptError):
        embed_dataset(tiny_model, shapes, split="train", out_dir=tmp_path / "cut", batch_size=4,
                      num_workers=2, resume=False, progress=stop)  # fmt: skip
    before = _pool_pids()
    _same_bytes(_embed(tiny_model, glyphs, tmp_path / "next", 2), ref)
    assert _pool_pids() == before  # the pool survived the interruption


def test_stale_tasks_are_not_decoded(shapes: DatasetLayout) -> None:
    current = torch.multiprocessing.Value("q", 2)  # type: ignore[attr-defined]
    dispatch = RunDispatch(current)
    task = Task(run=1, payload="/nonexistent/never-read.pkl", key="k", indices=[0, 1])
    assert dispatch.__getitems__(task) == STALE
    with pytest.raises(FileNotFoundError):
        dispatch.__getitems__(Task(run=2, payload=task.payload, key="k", indices=[0]))


def _kill_an_idle_worker(model: LoadedModel, ds: DatasetLayout, tmp_path: Path) -> int:
    """Run once through the pool, SIGKILL one of its (now idle) workers, wait until it is
    dead; its pid."""
    _embed(model, ds, tmp_path / "first", 2)
    victim = _pool_pids()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60  # a failure bound only
    while _status(victim) not in ("Z", ""):
        assert time.monotonic() < deadline, f"worker {victim} outlived SIGKILL"
        time.sleep(0.05)
    return victim


def test_a_worker_killed_between_runs_is_replaced_quietly(
    tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    """PyTorch's SIGCHLD handler would raise in whatever the process did next; the pool only
    registers its workers during a run, and the next run starts new ones."""
    ref = _embed(tiny_model, shapes, tmp_path / "ref", 0)
    victim = _kill_an_idle_worker(tiny_model, shapes, tmp_path)  # no exception meanwhile
    _same_bytes(_embed(tiny_model, shapes, tmp_path / "after", 2), ref)
    assert victim not in _pool_pids()


def test_a_worker_found_dead_by_the_reset_is_replaced_too(
    tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that dies after the run's liveness check: the epoch reset (which waits for
    every worker) names it, and the run starts new workers instead of failing."""
    ref = _embed(tiny_model, shapes, tmp_path / "ref", 0)
    victim = _kill_an_idle_worker(tiny_model, shapes, tmp_path)
    monkeypatch.setattr(pool_module, "_all_alive", lambda iterator: True)  # the check missed it
    _same_bytes(_embed(tiny_model, shapes, tmp_path / "after", 2), ref)
    assert victim not in _pool_pids()


def test_a_worker_killed_during_a_run_fails_it_and_the_next_run_works(
    tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    ref = _embed(tiny_model, shapes, tmp_path / "ref", 0)
    _embed(tiny_model, shapes, tmp_path / "first", 2)
    victim = _pool_pids()[0]

    def kill(fraction: float, stage: str, **units: object) -> None:
        if stage == "embedding":
            os.kill(victim, signal.SIGKILL)
            # once it is dead its SIGCHLD is ours: the handler raises in this loop or at
            # the next batch
            deadline = time.monotonic() + 60
            while _status(victim) not in ("Z", "") and time.monotonic() < deadline:
                time.sleep(0.01)

    with pytest.raises(RuntimeError, match=f"DataLoader worker \\(pid\\(?s?\\)? ?{victim}"):
        embed_dataset(tiny_model, shapes, split="train", out_dir=tmp_path / "cut", batch_size=4,
                      num_workers=2, resume=False, progress=kill)  # fmt: skip
    _same_bytes(_embed(tiny_model, shapes, tmp_path / "after", 2), ref)
    assert victim not in _pool_pids()


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return ""


def test_a_busy_pool_and_another_configuration(shapes: DatasetLayout) -> None:
    with shared_pool(2, pin_memory=False, worker_init_fn=None) as first:
        assert first is not None
        seen: list[Any] = []

        def other() -> None:
            with shared_pool(2, pin_memory=False, worker_init_fn=None) as second:
                seen.append(second)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert seen == [None]  # busy: the second run would start its own DataLoader
    with shared_pool(1, pin_memory=False, worker_init_fn=None) as third:
        assert third is not None and third is not first and third.config[0] == 1
    assert not first.dir.exists()  # the replaced pool was closed


def test_an_unpicklable_dataset_decodes_in_a_dataloader_of_its_own(
    tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    """A source holding something pickle refuses (a lock here) still embeds, same bytes."""

    ref = _embed(tiny_model, shapes, tmp_path / "ref", 0)
    source = LockedSource(shapes.source.root)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(source)
    locked = dataclasses.replace(shapes, source=source)
    _same_bytes(_embed(tiny_model, locked, tmp_path / "locked", 2), ref)


@dataclasses.dataclass(frozen=True)
class LockedSource(FileSource):
    lock: Any = dataclasses.field(default_factory=threading.Lock)


def test_batches_come_back_in_order_with_their_errors(tmp_path: Path) -> None:
    """Directly through the pool: many small batches over 2 workers, a corrupt file named."""
    rng = np.random.default_rng(0)
    from PIL import Image

    names = []
    for i in range(23):
        name = f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)).save(tmp_path / name)
        names.append(name)
    (tmp_path / "07.png").write_bytes(b"not a png")
    dataset = ImageBatches(FileSource(tmp_path), names, NATIVE)
    cuts = [range(a, min(a + 3, 23)) for a in range(0, 23, 3)]
    with shared_pool(2, pin_memory=False, worker_init_fn=None) as pool:
        assert pool is not None
        got = list(pool.batches(dataset, cuts))
    assert [index for _, index, _ in got] == [list(c) for c in cuts]
    errors = [e for _, _, errs in got for e in errs]
    assert [i for i, e in enumerate(errors) if e] == [7] and "07.png" in errors[7]
    for (pixels, _, _), cut in zip(got, cuts, strict=True):
        expect = dataset.__getitems__(list(cut))[0]
        assert np.array_equal(np.asarray(pixels), np.asarray(expect))
