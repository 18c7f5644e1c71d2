"""The progress bar of `--wait`: a job's stage, its units and an ETA, drawn with rich."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


def describe(job: dict[str, Any]) -> str:
    """One line of a job's progress: ``embedding 2048/5120 images``, ``training 40/300 steps
    epoch 2/10 loss 0.4123 val_acc 0.8125``, or the stage alone."""
    p = job.get("progress") or {}
    parts = [str(p.get("stage") or job.get("status", ""))]
    if p.get("total"):
        parts.append(f"{p.get('done') or 0}/{p['total']} {p.get('unit') or ''}".rstrip())
    if p.get("epochs"):
        parts.append(f"epoch {p.get('epoch') or 0}/{p['epochs']}")
    for key in ("loss", "val_acc"):
        if p.get(key) is not None:
            parts.append(f"{key} {p[key]:.4f}")
    return " ".join(parts)


class JobBar:
    """A bar of a job's `progress.fraction` with `describe` beside it and the time left."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task = progress, task

    def update(self, job: dict[str, Any]) -> None:
        fraction = float((job.get("progress") or {}).get("fraction") or 0.0)
        self.progress.update(self.task, completed=fraction, description=describe(job))


@contextmanager
def job_bar(job_id: str, console: Console | None = None) -> Iterator[JobBar | None]:
    """A live bar on stderr while the block runs; None where stderr is not a terminal (logs
    and pipes get the final JSON only)."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn(f"{job_id} [bold]{{task.description}}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        yield JobBar(progress, progress.add_task("queued", total=1.0))
