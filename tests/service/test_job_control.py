"""Controlling jobs over real HTTP with a real worker: cancelling a running job stops the
embedding and training loops between batches and leaves nothing of the run behind;
missing weights fail the job with the cache to fill; `iimm jobs submit --wait` exits 1."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.stack import ROOT, Stack, embedded_stack, make_task, wait_job, zip_dir
from tests.service.test_api import add_tiny, upload


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An embedded stack embedding one image a batch, so runs have many batches."""
    st = embedded_stack(tmp_path_factory.mktemp("cancel"), IIMM_EMBED_BATCH_SIZE="1")
    st.start_worker()
    try:
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="module")
def many_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 classes, 600 test images (and 1800 train images)."""
    root = tmp_path_factory.mktemp("many")
    return zip_dir(make_task(root / "data", per_class=400), root / "many.zip")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _when_under_way(c: httpx.Client, job_id: str, unit: str) -> dict[str, Any]:
    """The job once its progress counts at least one `unit` done (it is mid-loop)."""
    deadline = time.monotonic() + 240
    while True:
        job = c.get(f"/v1/jobs/{job_id}").json()
        p = job["progress"]
        if job["status"] != "queued" and p["unit"] == unit and (p["done"] or 0) >= 1:
            return job
        assert job["status"] in ("queued", "running"), job
        assert time.monotonic() < deadline, f"job never got under way: {job}"
        time.sleep(0.05)


def _cancel(c: httpx.Client, job_id: str) -> dict[str, Any]:
    resp = c.post(f"/v1/jobs/{job_id}:cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["cancel_requested"] is True
    return wait_job(c, job_id)


def test_cancel_stops_training_between_steps(stack: Stack, many_zip: Path) -> None:
    with stack.client(stack.new_key(_name("cancel-ft"))) as c:
        train, model = upload(c, many_zip).json()["id"], add_tiny(c)
        hyper = {"epochs": 1000, "batch_size": 2, "lr": 0.003}  # about 800 000 steps
        body = {"type": "finetune", "model_id": model["id"], "dataset_id": train,
                "hyperparameters": hyper, "evaluate_on": []}  # fmt: skip
        job = c.post("/v1/jobs", json=body).json()
        running = _when_under_way(c, job["id"], "steps")
        p = running["progress"]
        assert p["stage"] == "training" and p["epochs"] == 1000 and p["loss"] is not None
        assert p["total"] % 1000 == 0 and p["total"] > 1000
        done = _cancel(c, job["id"])
        assert done["status"] == "cancelled", done
        assert done["progress"]["stage"] == "cancelled"
        assert done["progress"]["done"] < done["progress"]["total"]
        assert done["result"] is None
        assert c.get("/v1/finetuned-models").json()["items"] == []
    # the run's checkpoints are gone: a cancelled job can never resume
    assert not (stack.data_dir / "artifacts" / "finetune" / job["id"]).exists()


def test_cancel_stops_embedding_between_batches(stack: Stack, many_zip: Path) -> None:
    with stack.client(stack.new_key(_name("cancel-emb"))) as c:
        dataset, model = upload(c, many_zip).json()["id"], add_tiny(c)
        # the train split, 1800 images: a tiny model embeds 600 in about a second, and the
        # first progress (one heartbeat, up to a second, after the loop starts) may already
        # count hundreds; what is left must outlast this test's reaction on a loaded machine
        refs = {"model_id": model["id"], "dataset_id": dataset, "split": "train"}
        job = c.post("/v1/jobs", json={"type": "embed", **refs}).json()
        running = _when_under_way(c, job["id"], "images")
        assert running["progress"]["total"] == 1800
        # The heartbeat may take a second to read the flag: freeze the worker while the
        # cancel is requested and for one progress interval, so on SIGCONT its overdue
        # heartbeat reads the flag at once.
        stack.signal_workers(signal.SIGSTOP)
        try:
            done = c.post(f"/v1/jobs/{job['id']}:cancel").json()
            assert done["cancel_requested"] is True
            time.sleep(1.1)  # IIMM_PROGRESS_INTERVAL_S (1 s) passes while frozen
        finally:
            stack.signal_workers(signal.SIGCONT)
        done = wait_job(c, job["id"])
        assert done["status"] == "cancelled", done
        assert done["progress"]["done"] < 1800
        # no embeddings were recorded (a score job has nothing to read) and no files remain
        score = c.post("/v1/jobs", json={"type": "score", **refs})
        assert score.status_code == 409 and "embed job first" in score.json()["detail"]
    leftovers = stack.data_dir / "artifacts" / "embeddings"
    assert not leftovers.exists() or not any(leftovers.iterdir())


def test_missing_weights_fail_the_job_and_wait_exits_1(stack: Stack, many_zip: Path) -> None:
    """The worker has no network (HF_HUB_OFFLINE here): the job fails with the cache to fill,
    and `iimm jobs submit --wait` prints it and exits 1."""
    key = stack.new_key(_name("weights"))
    with stack.client(key) as c:
        dataset = upload(c, many_zip).json()["id"]
        resp = c.post("/v1/models", json={"name": _name("rn50"), "arch": "RN50",
                                          "pretrained": "openai"})  # fmt: skip
        assert resp.status_code == 201, resp.text
        model = resp.json()["id"]
    out = subprocess.run(
        [sys.executable, "-m", "iimm_cli", "jobs", "submit", "embed", "--model-id", model,
         "--dataset-id", dataset, "--wait", "--timeout", "300", "--url", stack.url,
         "--api-key", key],
        env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert '"status": "failed"' in out.stdout
    assert "not on this machine" in out.stderr and "timm/resnet50_clip.openai" in out.stderr
