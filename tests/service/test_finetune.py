"""Fine-tuning over HTTP with the real worker: learning on a generated task, the accuracy
matrix against an independent computation, and clear 4xx errors for bad requests."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.service.stack import ROOT, Stack, make_task, wait_job, zip_dir
from tests.service.test_api import add_tiny, assert_problem, upload

# Small and quick on 2 loaded cores; the colour task is learnable in a few epochs.
HYPER = {"epochs": 3, "batch_size": 8, "lr": 0.003, "seed": 0}


@pytest.fixture(scope="session")
def colours_zip(workdir: Path) -> Path:
    """A learnable generated task: 6 hues, 20 images each (15 train, 5 test)."""
    root = workdir / "colours"
    root.mkdir(exist_ok=True)
    return zip_dir(make_task(root / "data", task="colours", per_class=20), root / "c.zip")


@pytest.fixture(scope="session")
def test_only_zip(workdir: Path) -> Path:
    """A dataset with a test split and no train split."""
    root = workdir / "testonly"
    data = make_task(root / "data", per_class=4, seed=5)
    for path in (data / "train").rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted((data / "train").rglob("*"), reverse=True):
        path.rmdir()
    (data / "train").rmdir()
    return zip_dir(data, root / "t.zip")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _evaluations(c: httpx.Client, model_id: str) -> dict[str, float]:
    items = c.get("/v1/evaluations", params={"model_id": model_id, "split": "test"}).json()
    for e in items["items"]:  # names beside the ids, as the catalog has them
        assert e["dataset_name"] == c.get(f"/v1/datasets/{e['dataset_id']}").json()["name"]
        assert e["base_model_name"] == c.get(f"/v1/models/{e['base_model_id']}").json()["name"]
    return {e["dataset_id"]: e["top1"] for e in items["items"]}


def expected_row(ft: dict[str, float], zs: dict[str, float], train: str) -> tuple[float, float]:
    """G and the ood change, computed here independently of app.matrices."""
    gain = (ft[train] - zs[train]) / (1 - zs[train])
    others = sorted(set(ft) & set(zs) - {train})
    return gain, sum(ft[j] - zs[j] for j in others) / len(others)


def _check_matrix(
    stack: Stack, c: httpx.Client, model: dict[str, Any], ftm: str, train: str
) -> None:
    matrix = c.get("/v1/matrices", params={"base_model_id": model["id"], "method": "full"})
    assert matrix.status_code == 200, matrix.text
    body = matrix.json()
    zs, ft = _evaluations(c, model["id"]), _evaluations(c, ftm)
    assert body["zero_shot"] == zs
    (row,) = body["rows"]
    assert row["finetuned_model_id"] == ftm and row["accuracies"] == ft
    gain, ood = expected_row(ft, zs, train)
    assert row["gain"] == pytest.approx(gain, abs=1e-12)
    assert row["ood_change"] == pytest.approx(ood, abs=1e-12)
    _check_service(stack, c, model["id"], body)
    for params, headers in (({"format": "csv"}, {}), ({}, {"Accept": "text/csv"})):
        resp = c.get("/v1/matrices", params={"base_model_id": model["id"], **params},
                     headers=headers)  # fmt: skip
        assert resp.headers["content-type"].startswith("text/csv"), resp.text
        lines = list(csv.reader(io.StringIO(resp.text)))
        assert lines[0][-3:] == ["gain", "ood_change", "flag"] and lines[1][0] == "zero-shot"
        assert float(lines[2][-3]) == pytest.approx(gain, abs=1e-12)
        assert lines[2][-1] == (row["flag"] or "")


def _check_service(stack: Stack, c: httpx.Client, model_id: str, body: dict[str, Any]) -> None:
    """`build_matrix`, the function the predictors code against, gives what the API shows."""
    from sqlalchemy.orm import Session

    from app.db import make_engine
    from app.matrices.service import build_matrix

    url = stack.env.get("IIMM_DATABASE_URL") or f"sqlite:///{stack.data_dir / 'iimm.db'}"
    job_id = c.get("/v1/jobs").json()["items"][0]["id"]
    engine = make_engine(url, read_only=True)
    try:
        with Session(engine) as session:
            project_id = session.scalar(text("SELECT project_id FROM jobs WHERE id = :j"),
                                        {"j": job_id})  # fmt: skip
            m = build_matrix(session, project_id=project_id, base_model_id=model_id, method="full")
    finally:
        engine.dispose()
    assert m.datasets == [d["id"] for d in body["datasets"]] and m.zero_shot == body["zero_shot"]
    assert [(r.finetuned_model_id, r.accuracies, r.gain, r.ood_change) for r in m.rows] == [
        (r["finetuned_model_id"], r["accuracies"], r["gain"], r["ood_change"]) for r in body["rows"]
    ]


def test_finetune_learns_and_matrix(stack: Stack, colours_zip: Path, shapes_zip: Path) -> None:
    with stack.client(stack.new_key(_name("ft"))) as c:
        train = upload(c, colours_zip).json()["id"]
        other = upload(c, shapes_zip).json()["id"]
        model = add_tiny(c)
        body = {"type": "finetune", "model_id": model["id"], "dataset_id": train,
                "method": "full", "hyperparameters": HYPER}  # fmt: skip
        resp = c.post("/v1/jobs", json=body)
        assert resp.status_code == 202, resp.text
        job = wait_job(c, resp.json()["id"])
        assert job["status"] == "succeeded", job
        ftm = job["result"]["finetuned_model_id"]
        history = job["result"]["history"]
        assert [h["epoch"] for h in history] == list(range(1, HYPER["epochs"] + 1))
        assert all(h["val_acc"] is not None for h in history)
        record = c.get(f"/v1/finetuned-models/{ftm}").json()
        assert record["train_dataset_id"] == train and record["best_epoch"] >= 1
        # only the trained parameters stay; their size is reported
        kept = stack.data_dir / "artifacts" / "finetune" / job["id"]
        wait_pruned(kept)
        size = (kept / "final.pt").stat().st_size
        assert record["metrics"]["checkpoint_bytes"] == job["result"]["checkpoint_bytes"] == size
        zs, ft = _evaluations(c, model["id"]), _evaluations(c, ftm)
        assert set(zs) == set(ft) == {train, other}
        assert ft[train] >= 0.6 and ft[train] >= zs[train] + 0.3, (zs, ft)
        _check_matrix(stack, c, model, ftm, train)
        _check_evaluate_jobs(c, model["id"], ftm, other)
        if stack.kind == "embedded":
            _check_cli(stack, c, model["id"], ftm, other)


def wait_pruned(kept: Path, timeout: float = 300.0) -> None:
    """Wait until a succeeded fine-tune's checkpoint folder holds only ``final.pt`` (the
    rest goes right after the success is committed)."""
    deadline = time.monotonic() + timeout
    while sorted(p.name for p in kept.iterdir()) != ["final.pt"]:
        assert time.monotonic() < deadline, sorted(p.name for p in kept.iterdir())
        time.sleep(0.2)


def _cli(stack: Stack, key: str, *args: str) -> str:
    env = {**stack.env, "IIMM_URL": stack.url, "IIMM_API_KEY": key}
    out = subprocess.run([sys.executable, "-m", "iimm_cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def _check_cli(stack: Stack, c: httpx.Client, model_id: str, ftm: str, other: str) -> None:
    """`iimm jobs submit evaluate` and `iimm matrices` (table and the server's CSV)."""
    key = c.headers["Authorization"].removeprefix("Bearer ")
    args = ["evaluate", "--model-id", ftm, "--param", f'dataset_ids=["{other}"]', "--wait"]
    assert json.loads(_cli(stack, key, "jobs", "submit", *args))["status"] == "succeeded"
    csv_text = _cli(stack, key, "matrices", "--base-model", model_id, "--csv")
    params = {"base_model_id": model_id, "format": "csv"}
    assert csv_text == c.get("/v1/matrices", params=params).text
    table = _cli(stack, key, "matrices", "--base-model", model_id, "--method", "full")
    assert "zero-shot" in table and "ood_change" in table


def _check_evaluate_jobs(c: httpx.Client, model_id: str, ftm: str, other: str) -> None:
    """`evaluate` reloads the fine-tuned model from its checkpoint (same figures), and
    zero-shot reuses the embed job's stored accuracy."""
    before = c.get("/v1/evaluations", params={"model_id": ftm, "dataset_id": other}).json()
    job = c.post("/v1/jobs", json={"type": "evaluate", "model_id": ftm, "dataset_ids": [other]})
    done = wait_job(c, job.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["metrics"][other]["top1"] == before["items"][0]["top1"]
    names = (before["items"][0]["base_model_name"], {other: before["items"][0]["dataset_name"]})
    assert (done["result"]["base_model_name"], done["result"]["dataset_names"]) == names
    embed = {"type": "embed", "model_id": model_id, "dataset_id": other, "split": "test"}
    assert wait_job(c, c.post("/v1/jobs", json=embed).json()["id"])["status"] == "succeeded"
    body = {"type": "evaluate", "model_id": model_id, "dataset_ids": [other]}
    done = wait_job(c, c.post("/v1/jobs", json=body).json()["id"])
    assert done["status"] == "succeeded", done
    reused = done["result"]["metrics"][other]
    assert reused["reused_embedding_id"]
    # per-class recall from the stored top-k predictions: one per class, averaging to the mean
    recall = [r for r in reused["per_class_recall"] if r is not None]
    assert len(reused["per_class_recall"]) == 6 and recall
    assert sum(recall) / len(recall) == pytest.approx(reused["mean_per_class_recall"], abs=1e-12)
    rows = c.get("/v1/evaluations", params={"model_id": model_id, "dataset_id": other}).json()
    assert rows["items"][0]["per_class_recall"] == reused["per_class_recall"]


def _final_params(stack: Stack, job_id: str) -> dict[str, Any]:
    import torch

    path = stack.data_dir / "artifacts" / "finetune" / job_id / "final.pt"
    return torch.load(path, map_location="cpu", weights_only=True)["params"]


def _kill_after_first_checkpoint(stack: Stack, job_id: str, timeout: float = 300.0) -> None:
    pointer = stack.data_dir / "artifacts" / "finetune" / job_id / "latest.json"
    deadline = time.monotonic() + timeout
    while not pointer.exists():
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    stack.kill_workers(signal.SIGKILL)


def test_kill_9_mid_training_resumes(stack: Stack, colours_zip: Path) -> None:
    """A worker killed after the first epoch's checkpoint: the job resumes on a new worker
    and its trained parameters equal those of an uninterrupted run with the same seed."""
    with stack.client(stack.new_key(_name("kill"))) as c:
        train, model = upload(c, colours_zip).json()["id"], add_tiny(c)
        hyper = {**HYPER, "epochs": 4, "batch_size": 2}
        body = {"type": "finetune", "model_id": model["id"], "dataset_id": train,
                "hyperparameters": hyper, "evaluate_on": []}  # fmt: skip
        job = c.post("/v1/jobs", json=body).json()
        _kill_after_first_checkpoint(stack, job["id"])
        stack.start_worker()
        resumed = wait_job(c, job["id"])
        assert resumed["status"] == "succeeded", resumed
        assert resumed["attempts"] == 2 and resumed["result"]["resumed_from_epoch"] >= 1
        reference = wait_job(c, c.post("/v1/jobs", json=body).json()["id"])
        assert reference["status"] == "succeeded" and reference["result"]["resumed_from_epoch"] == 0
    assert resumed["result"]["history"] == reference["result"]["history"]
    expected, actual = _final_params(stack, reference["id"]), _final_params(stack, resumed["id"])
    assert set(actual) == set(expected) and expected
    for name, tensor in expected.items():
        assert torch_equal(actual[name], tensor), name


def torch_equal(a: Any, b: Any) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_bad_requests(stack: Stack, colours_zip: Path, test_only_zip: Path) -> None:
    """Clear 4xx problems at submission; other projects' ids are 404."""
    with stack.client(stack.new_key(_name("bad"))) as c:
        train, model = upload(c, colours_zip).json()["id"], add_tiny(c)
        no_train = upload(c, test_only_zip).json()["id"]
        ok = {"type": "finetune", "model_id": model["id"], "dataset_id": train}
        cases = [
            ({**ok, "method": "dora"}, 422, "unknown fine-tuning method", "lora"),
            ({**ok, "dataset_id": no_train}, 422, "no 'train' split"),
            ({**ok, "method": "lora", "hyperparameters": {"grid": {
                "lr": [1, 0.1, 0.01, 0.001], "weight_decay": [0.1, 0.01, 0.001, 0.0001],
                "lora_rank": [1, 2, 4, 8, 16]}}}, 422, "80 points", "max_grid_points=64"),
            ({**ok, "hyperparameters": {"grid": {"lr": [0.1, 0.01]}, "max_grid_points": 1}},
             422, "2 points"),
            ({**ok, "hyperparameters": {"epochs": 0}}, 422, "epochs"),
            ({**ok, "model_id": "mdl_nope"}, 404, "mdl_nope"),
            ({**ok, "evaluate_on": ["dst_nope"]}, 404, "dst_nope"),
            ({"type": "evaluate", "model_id": "ftm_nope"}, 404, "ftm_nope"),
            ({"type": "evaluate", "model_id": model["id"], "dataset_ids": [train],
              "split": "nope"}, 422, "no 'nope' split"),
        ]  # fmt: skip
        for body, status, *words in cases:
            assert_problem(c.post("/v1/jobs", json=body), status, *words)
        assert_problem(c.get("/v1/matrices", params={"base_model_id": "mdl_nope"}), 404)
    with stack.client(stack.new_key(_name("other"))) as other:
        assert_problem(other.post("/v1/jobs", json=ok), 404, model["id"])
        assert_problem(other.get("/v1/matrices", params={"base_model_id": model["id"]}), 404)


def test_method_unsupported_for_architecture(stack: Stack, colours_zip: Path) -> None:
    """A ResNet image tower has no transformer blocks: BitFit is refused at submission."""
    config = stack.data_dir / "tiny-rn.json"
    config.write_text(json.dumps(RN_CONFIG))
    with stack.client(stack.new_key(_name("rn"))) as c:
        train = upload(c, colours_zip).json()["id"]
        resp = c.post("/v1/models", json={"name": _name("rn"), "arch": str(config),
                                          "pretrained": "random"})  # fmt: skip
        assert resp.status_code == 201, resp.text
        body = {"type": "finetune", "model_id": resp.json()["id"], "dataset_id": train,
                "method": "bitfit"}  # fmt: skip
        assert_problem(c.post("/v1/jobs", json=body), 422, "ResNet", "bitfit")


RN_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
