"""`--wait`: the progress bar's text (stage, units, fine-tuning figures, ETA column) and the
exit status of a finished job."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from iimm_cli.jobs import finished
from iimm_cli.progress import describe, job_bar

RUNNING = {
    "id": "job_1",
    "status": "running",
    "progress": {"stage": "embedding", "fraction": 0.4, "done": 2048, "total": 5120,
                 "unit": "images"},
}  # fmt: skip
TRAINING = {
    "id": "job_2",
    "status": "running",
    "progress": {"stage": "training", "fraction": 0.1, "done": 40, "total": 300,
                 "unit": "steps", "epoch": 2, "epochs": 10, "loss": 0.41234, "val_acc": 0.8125},
}  # fmt: skip


def test_describe_names_stage_units_and_training_figures() -> None:
    assert describe(RUNNING) == "embedding 2048/5120 images"
    assert describe(TRAINING) == "training 40/300 steps epoch 2/10 loss 0.4123 val_acc 0.8125"
    assert describe({"status": "queued", "progress": {"stage": "queued", "fraction": 0}}) == (
        "queued"
    )


def test_the_bar_draws_on_a_terminal_only() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with job_bar("job_1", console) as bar:
        assert bar is not None
        bar.update(RUNNING)
    text = out.getvalue()
    assert "job_1" in text and "embedding 2048/5120 images" in text and "40%" in text
    assert re.search(r"(-:--:--|\d+:\d\d:\d\d)", text)  # the time-remaining column
    piped = io.StringIO()
    with job_bar("job_1", Console(file=piped, force_terminal=False)) as bar:
        assert bar is None
    assert piped.getvalue() == ""


@pytest.mark.parametrize(("status", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 1)])
def test_exit_status_follows_the_job(
    status: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    job = {"id": "job_3", "status": status, "error": "weights missing" if code else None}
    assert finished(job) == code
    captured = capsys.readouterr()
    assert '"status": "' + status in captured.out
    if code:
        assert f"job job_3 {status}" in captured.err
