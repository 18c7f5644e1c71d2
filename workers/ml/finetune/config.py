"""Fine-tuning configuration: a dataclass with a JSON round trip.

Defaults follow the paper (IIMM, §3 of DESIGN.md): SGD with momentum 0.9, batch 128, 30
epochs, and a grid over lr {1e-2..1e-5}, weight decay {1e-3..1e-5}, LoRA rank {2, 4, 8, 16}
and CLIP-Adapter reduction {4, 8, 16, 32} when one is asked for. The paper names no learning
rate schedule, so the default is ``"constant"``; ``"cosine"`` (per step, to zero) is offered.

``max_steps`` sets the budget in optimiser steps instead of epochs (``epochs`` is then
ignored): tasks of different sizes get the same number of updates, the last epoch may be
partial, and validation and checkpoints still come at the end of each (partial) epoch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from workers.ml.finetune.errors import InvalidConfigError

SCHEDULES = ("constant", "cosine")
PAPER_GRID: dict[str, list[float] | list[int]] = {
    "lr": [1e-2, 1e-3, 1e-4, 1e-5],
    "weight_decay": [1e-3, 1e-4, 1e-5],
    "lora_rank": [2, 4, 8, 16],
    "adapter_reduction": [4, 8, 16, 32],
}


@dataclass
class GridSpec:
    """Values to search; ``None`` keeps the config's single value. Axes that do not apply
    to the method (``lora_rank`` outside LoRA, ``adapter_reduction`` outside CLIP-Adapter)
    are ignored."""

    lr: list[float] | None = None
    weight_decay: list[float] | None = None
    lora_rank: list[int] | None = None
    adapter_reduction: list[int] | None = None

    @classmethod
    def paper(cls) -> GridSpec:
        """The paper's exhaustive grid (48 points for LoRA or CLIP-Adapter, 12 otherwise)."""
        return cls(**{k: list(v) for k, v in PAPER_GRID.items()})  # type: ignore[arg-type]


@dataclass
class FinetuneConfig:
    """Everything that decides a fine-tuning run; equal configs give equal weights on CPU."""

    method: str = "full"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    epochs: int = 30
    max_steps: int | None = None
    batch_size: int = 128
    schedule: str = "constant"
    seed: int = 0
    blocks: int | None = None
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_mlp: bool = False
    adapter_reduction: int = 4
    adapter_ratio: float = 0.2
    adapter_init: str = "zero"
    grid: GridSpec | None = None
    max_grid_points: int = 64
    eval_batch_size: int = 256
    num_workers: int = 0

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimiser steps of the run: ``max_steps``, or ``epochs`` x steps per epoch."""
        return self.max_steps or self.epochs * steps_per_epoch

    def total_epochs(self, steps_per_epoch: int) -> int:
        """Epochs of the run, the last one partial when ``max_steps`` is not a multiple."""
        return -(-self.total_steps(steps_per_epoch) // max(1, steps_per_epoch))

    def validate(self) -> FinetuneConfig:
        """Raise :class:`InvalidConfigError` naming the first bad value; return self."""
        checks = [
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1 or null"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.schedule in SCHEDULES, f"schedule must be one of {list(SCHEDULES)}"),
            (self.blocks is None or self.blocks >= 1, "blocks must be >= 1 or null"),
            (self.lora_rank >= 1, "lora_rank must be >= 1"),
            (self.adapter_reduction >= 1, "adapter_reduction must be >= 1"),
            (0 <= self.adapter_ratio <= 1, "adapter_ratio must be in [0, 1]"),
            (self.adapter_init in ("zero", "reference"), "adapter_init must be zero or reference"),
            (self.max_grid_points >= 1, "max_grid_points must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidConfigError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the grid as a nested dict or ``None``)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), so equal configs give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`InvalidConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidConfigError(f"unknown config keys: {unknown}; valid keys: {sorted(names)}")
        values = dict(data)
        grid = values.get("grid")
        if isinstance(grid, dict):
            grid_names = {f.name for f in dataclasses.fields(GridSpec)}
            if set(grid) - grid_names:
                raise InvalidConfigError(f"unknown grid keys: {sorted(set(grid) - grid_names)}")
            values["grid"] = GridSpec(**grid)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> FinetuneConfig:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
