"""A split with 0 images (3 images: the derived `val` split is empty): every job type that
reads a split is refused at submission (422 naming the split and the splits that have
images); a job that gets to a worker anyway (the split sizes were not known when it was
submitted) fails once, for good, with the same clear reason, never as an internal error.
And no job error shows the server's data directory."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from app.db import session_scope
from app.models import Dataset
from tests.service.test_api import add_tiny, assert_problem
from tests.workers.tasks.test_grid import drain, upload_and_ingest
from tests.workers.tasks.test_shards import _service
from workers import runner


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """The in-process service, and a zip of 3 images in 2 classes (no split folders)."""
    root = tmp_path_factory.mktemp("empty-split")
    archive = root / "three.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, name in enumerate(("a/0.png", "a/1.png", "b/0.png")):
            path = root / f"{i}.png"
            Image.new("RGB", (16, 16), (i * 90, 40, 200)).save(path)
            zf.write(path, name)
    for client, _ in _service(root / "data"):
        yield client, archive


def test_empty_split_is_refused_at_submission(service: tuple[TestClient, Path]) -> None:
    c, archive = service
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    splits = c.get(f"/v1/datasets/{dataset}").json()["splits"]
    assert splits["val"] == 0 and splits["train"] > 0, splits
    bodies = [
        {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "val"},
        {"type": "evaluate", "model_id": model, "dataset_ids": [dataset], "split": "val"},
    ]
    for body in bodies:
        resp = c.post("/v1/jobs", json=body)
        assert_problem(resp, 422, "'val'", "0 images", f"train ({splits['train']})")
        assert resp.json()["errors"][0]["loc"] == ["body", "split"]
    assert drain() == []  # nothing was queued
    ok = {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "train"}
    assert c.post("/v1/jobs", json=ok).status_code == 202


def test_a_worker_fails_an_empty_split_once_and_clearly(service: tuple[TestClient, Path]) -> None:
    c, archive = service
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    drain()
    # as for a dataset whose split sizes were not known when the job was submitted
    with session_scope(runner.worker_env().sessions) as session:
        session.execute(update(Dataset).where(Dataset.id == dataset).values(splits={}))
    body = {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "val"}
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    outcomes = drain()  # one run: a permanent failure is not retried
    assert len(outcomes) == 1 and outcomes[0].startswith("failed"), outcomes
    job = c.get(f"/v1/jobs/{resp.json()['id']}").json()
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert "'val'" in job["error"] and "0 images" in job["error"], job["error"]
    assert "internal error" not in job["error"]


def test_no_job_error_shows_the_data_directory(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A safety net behind every job's `error`: an unexpected error naming a file under the
    data directory (as OSError does) is stored with that directory cut out."""
    c, archive = service
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    drain()
    data_dir = runner.worker_env().settings.data_dir
    secret = data_dir / "tmp" / "iimm-ingest-x" / "a.png"

    def broken(ctx: object) -> None:
        raise OSError(2, "No such file or directory", str(secret))

    monkeypatch.setitem(runner.HANDLERS, "embed", broken)
    body = {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "train"}
    job_id = c.post("/v1/jobs", json=body).json()["id"]
    outcomes = drain()
    assert outcomes and outcomes[-1].startswith("failed"), outcomes
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert str(data_dir) not in job["error"] and str(data_dir) not in str(job["progress"])
    assert "<data dir>/tmp/iimm-ingest-x/a.png" in job["error"], job["error"]
