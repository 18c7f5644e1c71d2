"""End to end through the API and a real worker: assess four generated tasks, fine-tune a tiny
model on three, fit gain against IIMM, and predict for the held-out fourth (API and CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.measures.prediction import fit_linear, implied_accuracy_interval, predict
from iimm_cli import main as cli
from tests.service.conftest import WORKFLOW_TASKS, SharedStacks
from tests.service.stack import Stack, wait_job
from tests.service.test_api import add_tiny, upload

TASKS = WORKFLOW_TASKS
HYPER = {"epochs": 2, "batch_size": 8, "lr": 0.02, "seed": 0}


@pytest.fixture(scope="module")
def e2e_stack(shared_stacks: SharedStacks) -> Stack:
    """An embedded stack with one worker (the deployment users start with); the process's
    shared one (the test works in its own project)."""
    return shared_stacks.get("embedded")


def _run_jobs(c: httpx.Client, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = []
    for body in bodies:
        resp = c.post("/v1/jobs", json=body)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    jobs = [wait_job(c, i) for i in ids]
    for job in jobs:
        assert job["status"] == "succeeded", job
    return jobs


def _cli(stack: Stack, key: str, *args: str, capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    code = cli([*args, "--json", "--url", stack.url, "--api-key", key])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def _check_assessment(doc: dict[str, Any], prediction: dict[str, Any]) -> None:
    assert doc["iimm"]["ci_low"] <= doc["iimm"]["value"] <= doc["iimm"]["ci_high"]
    assert "iimm" in doc["measures"] and 0.0 <= doc["zero_shot_accuracy"] <= 1.0
    full = doc["methods"]["full"]
    assert full["gain"]["prediction"] == prediction["prediction"]
    assert full["finetuned_accuracy"] == prediction["finetuned_accuracy"]
    assert full["ood_change"] is None


def test_finetune_fit_and_predict_held_out(
    e2e_stack: Stack, task_zips: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key = e2e_stack.new_key("e2e-predictors")
    with e2e_stack.client(key) as c:
        model = add_tiny(c)["id"]
        datasets = [upload(c, z).json()["id"] for z in task_zips]
        train, held_out = datasets[:3], datasets[3]
        assess = [{"type": "assess", "model_id": model, "dataset_id": d, "bootstrap": 50}
                  for d in datasets]  # fmt: skip
        first = _run_jobs(c, assess)
        assert first[3]["result"]["methods"] == {} and "note" in first[3]["result"]
        _run_jobs(c, [{"type": "finetune", "model_id": model, "dataset_id": d, "method": "full",
                       "hyperparameters": HYPER} for d in train])  # fmt: skip
        fit = c.post("/v1/predictors", json={"base_model_id": model, "method": "full"})
        assert fit.status_code == 201, fit.text
        body = fit.json()
        assert sorted(body["datasets"]) == sorted(train) and body["n"] == 3
        matrix = c.get("/v1/matrices", params={"base_model_id": model, "method": "full"}).json()
        gains = {r["train_dataset_id"]: r["gain"] for r in matrix["rows"]}
        iimm = {d: doc["result"]["iimm"]["value"] for d, doc in zip(datasets, first, strict=True)}
        want = fit_linear([iimm[d] for d in train], [gains[d] for d in train])
        assert body["slope"] == pytest.approx(want.slope, rel=1e-9)
        assert body["r_squared"] == pytest.approx(want.r_squared, rel=1e-9, abs=1e-12)
        url = f"/v1/predictors/{body['id']}/predictions"
        pred = c.post(url, json={"dataset_id": held_out})
        assert pred.status_code == 200, pred.text
        got = pred.json()
        expected = predict(want, iimm[held_out])
        assert got["prediction"]["value"] == pytest.approx(expected.value, rel=1e-9)
        assert got["prediction"]["upper"] == pytest.approx(expected.upper, rel=1e-9)
        acc = implied_accuracy_interval(first[3]["result"]["zero_shot_accuracy"], expected)
        assert got["finetuned_accuracy"]["value"] == pytest.approx(acc.value, rel=1e-9)
        shown = _cli(e2e_stack, key, "predictors", "show", body["id"], capsys=capsys)
        assert shown == body
        again = _cli(e2e_stack, key, "predictors", "predict", body["id"], "--dataset-id",
                     held_out, capsys=capsys)  # fmt: skip
        assert again == got
        job = _cli(e2e_stack, key, "assess", "--model-id", model, "--dataset-id", held_out,
                   "--bootstrap", "50", capsys=capsys)  # fmt: skip
        assert job["status"] == "succeeded" and job["result"]["embeddings_reused"] is True
        _check_assessment(job["result"], got)
