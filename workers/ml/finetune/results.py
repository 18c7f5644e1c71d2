"""What a fine-tuning run returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from workers.ml.finetune.config import FinetuneConfig
from workers.ml.finetune.model import FinetunedCLIP


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch: 1-based ``epoch``, global ``step`` count, mean training loss and
    validation top-1 accuracy (``None`` without a validation set)."""

    epoch: int
    step: int
    train_loss: float
    val_acc: float | None


@dataclass(frozen=True)
class GridPoint:
    """One point of a grid search and how it did."""

    index: int
    config: FinetuneConfig
    best_val_acc: float | None
    best_epoch: int


@dataclass
class FinetuneResult:
    """A finished run. ``model`` holds the weights of ``best_epoch`` (the epoch with the best
    validation accuracy, or the last epoch without a validation set); ``config`` is the config
    trained (for a grid, the chosen point); ``grid`` lists every point of a grid search."""

    model: FinetunedCLIP
    config: FinetuneConfig
    best_epoch: int
    best_val_acc: float | None
    history: list[EpochRecord]
    trainable_params: int
    resumed_from_epoch: int
    grid: list[GridPoint] | None = None

    @property
    def method(self) -> str:
        return self.config.method

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (everything but the model), for a job's result."""
        grid = None
        if self.grid is not None:
            grid = [{**dataclasses.asdict(p), "config": p.config.to_dict()} for p in self.grid]
        return {
            "method": self.method,
            "config": self.config.to_dict(),
            "best_epoch": self.best_epoch,
            "best_val_acc": self.best_val_acc,
            "history": [dataclasses.asdict(r) for r in self.history],
            "trainable_params": self.trainable_params,
            "resumed_from_epoch": self.resumed_from_epoch,
            "grid": grid,
        }
