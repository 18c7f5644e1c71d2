"""A fine-tune given back by a stopping worker (SIGTERM: `workers.runner.Stopper.request`,
what both the embedded worker's and Celery's handlers call) keeps its checkpoints, and its
next attempt resumes from the last epoch's; a real cancel removes them, and a cancelled grid
leaves no folder behind. Jobs run in process through the worker's own `execute`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import get_settings
from tests.service.test_api import add_tiny
from tests.workers.tasks.test_grid import drain, in_process_service, upload_and_ingest
from workers import runner
from workers.tasks.base import JobContext

HYPER = {"epochs": 2, "batch_size": 8, "seed": 3}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """An embedded API in process (SQLite) and the environment the in-process worker reads."""
    yield from in_process_service(tmp_path_factory.mktemp("stop"))


def _artifacts() -> Path:
    return runner.worker_env().settings.data_dir / "artifacts"


def _submit(c: TestClient, model: str, dataset: str, hyper: dict[str, Any]) -> str:
    body = {"type": "finetune", "model_id": model, "dataset_id": dataset,
            "hyperparameters": hyper, "evaluate_on": [dataset]}  # fmt: skip
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


@pytest.fixture
def on_first_checkpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`arm(job_id, folder, act)`: once job `job_id` reports progress with a checkpoint
    pointer (`latest.json`) in `folder`, `act()` runs (once), then the report goes on (and
    raises if `act` cancelled the job). The stop is undone afterwards."""
    original = JobContext.progress
    armed: dict[str, Any] = {}

    def progress(self: JobContext, fraction: float, stage: str | None = None, **units: Any) -> None:
        if armed and self.job_id == armed["job"] and (armed["folder"] / "latest.json").exists():
            act = armed.pop("act")
            armed.clear()
            act()
        original(self, fraction, stage, **units)

    def arm(job_id: str, folder: Path, act: Any) -> None:
        armed.update(job=job_id, folder=folder, act=act)

    monkeypatch.setattr(JobContext, "progress", progress)
    try:
        yield arm
    finally:
        runner.STOP.requested.clear()


def _epoch(folder: Path) -> int:
    return int(json.loads((folder / "latest.json").read_text())["epoch"])


@pytest.mark.parametrize("grid", [False, True], ids=["serial", "grid point"])
def test_a_fine_tune_given_back_by_a_stopping_worker_resumes_from_its_checkpoint(
    grid: bool, service: tuple[TestClient, Path], on_first_checkpoint: Any
) -> None:
    c, colours = service
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    hyper = {**HYPER, "grid": {"lr": [0.001, 0.01]}} if grid else HYPER
    job_id = _submit(c, model, dataset, hyper)
    running, folder = job_id, _artifacts() / "finetune" / job_id
    if grid:
        assert runner.execute(job_id).startswith("waiting")
        kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
        running = next(k["id"] for k in kids if k["params"]["index"] == 0)
        folder = folder / "grid" / "000"
    on_first_checkpoint(running, folder, runner.STOP.request)  # what SIGTERM does
    assert runner.execute(running) == "given back: worker stopping"
    back = c.get(f"/v1/jobs/{running}").json()
    assert back["status"] == "queued" and back["attempts"] == 1, back
    assert back["max_attempts"] == get_settings().max_attempts + 1  # refunded
    kept = _epoch(folder)  # the checkpoint to resume from is still there
    assert kept >= 1
    runner.STOP.requested.clear()  # a fresh worker takes it
    drain()
    point = c.get(f"/v1/jobs/{running}").json()
    assert point["status"] == "succeeded" and point["attempts"] == 2, point
    assert point["result"]["resumed_from_epoch"] == kept
    assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


def test_cancelling_a_grid_mid_training_leaves_no_folder(
    service: tuple[TestClient, Path], on_first_checkpoint: Any
) -> None:
    """The parent is cancelled while point 0 trains (the heartbeat's flag set at once): the
    point's checkpoints go, and with them the grid's folders."""
    c, colours = service
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    job_id = _submit(c, model, dataset, {**HYPER, "grid": {"lr": [0.001, 0.01]}})
    assert runner.execute(job_id).startswith("waiting")
    kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    point = next(k["id"] for k in kids if k["params"]["index"] == 0)
    top = _artifacts() / "finetune" / job_id

    def cancel() -> None:
        assert c.post(f"/v1/jobs/{job_id}:cancel").json()["status"] == "cancelled"
        assert runner.STOP.running is not None
        runner.STOP.running.cancelled.set()  # as its next heartbeat does

    on_first_checkpoint(point, top / "grid" / "000", cancel)
    assert runner.execute(point) == "cancelled"
    kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    assert {k["status"] for k in kids} == {"cancelled"}
    assert not top.exists(), sorted(str(p) for p in top.rglob("*"))


@pytest.mark.parametrize("grid", [False, True], ids=["serial", "grid"])
def test_cancelling_a_given_back_fine_tune_removes_its_checkpoints(
    grid: bool, service: tuple[TestClient, Path], on_first_checkpoint: Any
) -> None:
    """Given back (checkpoints kept), then cancelled while queued: nothing runs it again,
    so the cancel itself removes its checkpoints."""
    c, colours = service
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    hyper = {**HYPER, "grid": {"lr": [0.001, 0.01]}} if grid else HYPER
    job_id = _submit(c, model, dataset, hyper)
    running, top = job_id, _artifacts() / "finetune" / job_id
    folder = top
    if grid:
        assert runner.execute(job_id).startswith("waiting")
        kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
        running = next(k["id"] for k in kids if k["params"]["index"] == 0)
        folder = top / "grid" / "000"
    on_first_checkpoint(running, folder, runner.STOP.request)
    assert runner.execute(running) == "given back: worker stopping"
    assert _epoch(folder) >= 1
    assert c.post(f"/v1/jobs/{job_id}:cancel").json()["status"] == "cancelled"
    assert not top.exists(), sorted(str(p) for p in top.rglob("*"))
