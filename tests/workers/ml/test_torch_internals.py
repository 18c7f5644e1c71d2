"""The private PyTorch attributes behind the decoding pool (workers/ml/data/torch_internals.py):
fails loudly on a torch that was never checked, and exercises each one on a real
multi-process DataLoader."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from workers.ml.data import torch_internals as internals


def test_this_torch_was_checked_against_the_private_attributes() -> None:
    assert internals.torch_minor() in internals.TESTED_TORCH, (
        f"torch {torch.__version__} is new to the decoding pool: check every private name in "
        "workers/ml/data/torch_internals.py against its DataLoader, run the pool's tests "
        "(tests/workers/ml/test_pool.py), then add it to TESTED_TORCH"
    )
    assert internals.missing() == []


def test_each_private_attribute_works_on_a_real_loader() -> None:
    loader = DataLoader(list(range(8)), batch_size=4, num_workers=1, persistent_workers=True)
    assert internals.current_iterator(loader) is None
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    iterator = internals.current_iterator(loader)
    assert iterator is not None
    workers = internals.worker_processes(iterator)
    assert len(workers) == 1 and workers[0].is_alive()
    internals.watch_workers(iterator, True)
    assert iterator._worker_pids_set
    internals.watch_workers(iterator, False)
    assert not iterator._worker_pids_set
    internals.shutdown_workers(iterator)
    workers[0].join(timeout=60)
    assert not workers[0].is_alive()
    internals.forget_iterator(loader)
    assert internals.current_iterator(loader) is None
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]  # new workers
    internals.shutdown_workers(internals.current_iterator(loader))
