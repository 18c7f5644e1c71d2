"""The fine-tuning job's progress: epoch, step, loss and validation accuracy on the job."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from workers.tasks.finetune import TRAIN_SHARE, _progress


class FakeContext:
    """Records what a handler reports (the heartbeat flushes it to the job row)."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, str | None]] = []

    def progress(self, fraction: float, stage: str | None = None) -> None:
        self.reports.append((fraction, stage))


def test_progress_names_epoch_step_loss_and_val_acc() -> None:
    ctx = FakeContext()
    config: Any = SimpleNamespace(batch_size=8, epochs=3)
    report = _progress(ctx, 80, config)  # type: ignore[arg-type]
    report(1, 5, 1.25, None)
    report(1, 10, 0.5, 0.75)
    report(3, 30, 0.1, 0.9)
    (f1, s1), (f2, s2), (f3, s3) = ctx.reports
    assert s1 == "training epoch 1/3 step 5 loss 1.2500"
    assert s2 == "training epoch 1/3 step 10 loss 0.5000 val_acc 0.7500"
    assert f1 < f2 < f3 == TRAIN_SHARE and s3 and "epoch 3/3" in s3
