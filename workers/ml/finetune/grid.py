"""Grid search over lr, weight decay, LoRA rank and CLIP-Adapter reduction, picking the best
validation accuracy (the paper's exhaustive search, bounded by ``max_grid_points``)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable

from torch import nn

from workers.ml.finetune.checkpoint import FINAL
from workers.ml.finetune.config import FinetuneConfig
from workers.ml.finetune.errors import GridTooLargeError, InvalidConfigError
from workers.ml.finetune.methods import get_method
from workers.ml.finetune.results import FinetuneResult, GridPoint
from workers.ml.finetune.storage import Store, SubStore, read_bytes, write_bytes

RunOne = Callable[[nn.Module, FinetuneConfig, Store], FinetuneResult]


def grid_points(config: FinetuneConfig) -> list[FinetuneConfig]:
    """Every config of ``config.grid`` (axes that do not apply to the method dropped), in
    a fixed order; :class:`GridTooLargeError` when there are more than ``max_grid_points``."""
    grid = config.grid
    if grid is None:
        return [config]
    axes = ["lr", "weight_decay", *get_method(config.method).grid_axes]
    values = [getattr(grid, a) or [getattr(config, a)] for a in axes]
    empty = [a for a in axes if getattr(grid, a) == []]
    if empty:
        raise InvalidConfigError(f"grid axes {empty} are empty; give values or null")
    size = 1
    for v in values:
        size *= len(v)
    if size > config.max_grid_points:
        shape = " × ".join(f"{len(v)} {a}" for a, v in zip(axes, values, strict=True))
        raise GridTooLargeError(
            f"grid has {size} points ({shape}), more than max_grid_points={config.max_grid_points}"
        )
    return [
        dataclasses.replace(config, grid=None, **dict(zip(axes, combo, strict=True)))
        for combo in itertools.product(*values)
    ]


def _better(candidate: FinetuneResult, best: FinetuneResult | None) -> bool:
    if best is None:
        return True
    return (candidate.best_val_acc or 0.0) > (best.best_val_acc or 0.0)


def run_grid(
    model: nn.Module, config: FinetuneConfig, store: Store, has_val: bool, run_one: RunOne
) -> FinetuneResult:
    """Train every grid point (each in ``grid/NNN/`` of ``store``, so each resumes on its
    own) from a pristine copy of ``model``; return the best point's result (ties: the first)
    with the whole grid listed, and copy its ``final.pt`` to the top of ``store``."""
    if not has_val:
        raise InvalidConfigError("a grid search needs a validation set to choose a point")
    points = grid_points(config)
    pristine = copy.deepcopy(model).cpu() if len(points) > 1 else model
    best: FinetuneResult | None = None
    best_index = 0
    summary: list[GridPoint] = []
    for index, point in enumerate(points):
        base = model if index == 0 else copy.deepcopy(pristine)
        result = run_one(base, point, SubStore(store, f"grid/{index:03d}"))
        summary.append(GridPoint(index, point, result.best_val_acc, result.best_epoch))
        if _better(result, best):
            best, best_index = result, index
    assert best is not None
    final = read_bytes(store, f"grid/{best_index:03d}/{FINAL}")
    if final is not None:
        write_bytes(store, FINAL, final)
    return dataclasses.replace(best, grid=summary)
