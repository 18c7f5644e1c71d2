"""Per-epoch training checkpoints: two alternating slots and a pointer to the newer one.

A slot holds the trained parameters only (for every method but ``full`` that is the PEFT
parameters), the optimizer and scheduler state, the counters, the best epoch so far and
every random state (torch CPU/CUDA, numpy, Python and the data-order generator). Writing the
slot the pointer does *not* name, then the pointer, means a crash at any moment leaves one
complete checkpoint; if the pointer itself is unreadable both slots are tried.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import torch

from workers.ml.finetune.errors import CheckpointMismatchError
from workers.ml.finetune.storage import Store, load_object, read_bytes, save_object, write_bytes

SLOTS = ("checkpoint-a.pt", "checkpoint-b.pt")
POINTER = "latest.json"
FINAL = "final.pt"
BEST = "best.pt"
FORMAT = 1


def capture_rng(data_generator: torch.Generator) -> dict[str, Any]:
    """Every random state a training epoch touches."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
        "data": data_generator.get_state(),
    }


def restore_rng(state: dict[str, Any], data_generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    data_generator.set_state(state["data"])


def _pointed_slot(store: Store) -> str | None:
    raw = read_bytes(store, POINTER)
    try:
        slot = json.loads(raw)["slot"] if raw is not None else None
    except (ValueError, KeyError, TypeError):
        return None
    return slot if slot in SLOTS else None


def save_checkpoint(store: Store, state: dict[str, Any]) -> None:
    """Write ``state`` to the slot not in use, then point at it."""
    slot = SLOTS[1] if _pointed_slot(store) == SLOTS[0] else SLOTS[0]
    save_object(store, slot, {"format": FORMAT, **state})
    write_bytes(store, POINTER, json.dumps({"slot": slot, "epoch": state["epoch"]}).encode())


def _try_load(store: Store, slot: str) -> dict[str, Any] | None:
    try:
        return load_object(store, slot)
    except Exception:  # a torn write: the other slot is the fallback
        return None


def load_latest(store: Store) -> dict[str, Any] | None:
    """The newest complete checkpoint, or ``None`` when the store has none."""
    slot = _pointed_slot(store)
    if slot is not None:
        state = _try_load(store, slot)
        if state is not None:
            return state
    candidates = [s for s in (_try_load(store, slot) for slot in SLOTS) if s is not None]
    return max(candidates, key=lambda s: s["epoch"], default=None)


def check_run(saved: dict[str, Any], run: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint written by a different run."""
    if saved != run:
        changed = sorted(k for k in set(saved) | set(run) if saved.get(k) != run.get(k))
        raise CheckpointMismatchError(
            f"the checkpoint store holds a different run (differs in {changed}); "
            "use a new checkpoint location or the original request"
        )
