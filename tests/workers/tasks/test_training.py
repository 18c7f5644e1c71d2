"""The fine-tuning job's progress: steps of all, epoch, loss and validation accuracy."""

from __future__ import annotations

from typing import Any

from workers.ml.finetune import FinetuneConfig
from workers.tasks.training import TRAIN_SHARE, _progress


class FakeContext:
    """Records what a handler reports (the heartbeat writes it to the job row)."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, str | None, dict[str, Any]]] = []

    def progress(self, fraction: float, stage: str | None = None, **units: Any) -> None:
        self.reports.append((fraction, stage, units))


def test_progress_names_epoch_step_loss_and_val_acc() -> None:
    ctx = FakeContext()
    report = _progress(ctx, 80, FinetuneConfig(batch_size=8, epochs=3))  # type: ignore[arg-type]
    report(1, 5, 1.25, None)
    report(1, 10, 0.5, 0.75)  # end of epoch 1: validation accuracy
    report(2, 11, 0.4, None)  # a step of epoch 2 still shows epoch 1's accuracy
    report(3, 30, 0.1, 0.9)
    (f1, s1, u1), (f2, _, u2), (_, _, u3), (f4, _, u4) = ctx.reports
    assert s1 == "training"
    assert u1 == {"done": 5, "total": 30, "unit": "steps", "epoch": 1, "epochs": 3,
                  "loss": 1.25, "val_acc": None}  # fmt: skip
    assert u2["val_acc"] == 0.75 and u3["val_acc"] == 0.75 and u3["loss"] == 0.4
    assert u4["done"] == u4["total"] == 30 and u4["val_acc"] == 0.9
    assert f1 < f2 < f4 == TRAIN_SHARE


def test_max_steps_bounds_the_total() -> None:
    ctx = FakeContext()
    report = _progress(ctx, 80, FinetuneConfig(batch_size=8, epochs=30, max_steps=25))  # type: ignore[arg-type]
    report(3, 25, 0.2, 0.5)
    ((fraction, _, units),) = ctx.reports
    assert (units["done"], units["total"], units["epochs"]) == (25, 25, 3)
    assert fraction == TRAIN_SHARE
