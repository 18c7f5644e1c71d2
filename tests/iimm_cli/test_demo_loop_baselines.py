"""The demo loop scores the transferability baselines on every task after assessing it (on
the embeddings assess stored), so the comparison it reads includes them; a config without
baselines submits no such job (a stand-in client records the jobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iimm_cli import demo_loop
from iimm_cli.demo_loop import BASELINES, LoopConfig, run_loop


class FakeClient:
    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []

    def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        if path == "/v1/models":
            return {"id": "mdl_1", "spec": "reference"}
        if path == "/v1/jobs":
            self.jobs.append(kw["json"])
            return {"id": f"job_{len(self.jobs)}"}
        return {"id": "prd_1"}  # predictors (the loop reads their ids), matrices, comparison

    def wait_job(self, job_id: str, **kw: Any) -> dict[str, Any]:
        return {"id": job_id, "status": "succeeded", "result": {}}


@pytest.mark.parametrize("baselines", [BASELINES, ()])
def test_the_loop_scores_the_baselines_after_assess(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, baselines: tuple[str, ...]
) -> None:
    ids = {"a": "dst_a", "b": "dst_b"}
    monkeypatch.setattr(demo_loop, "upload_suite", lambda *args, **kw: ids)
    client = FakeClient()
    cfg = LoopConfig(train_tasks=("a",), held_out_tasks=("b",), baselines=baselines)
    run_loop(client, tmp_path, cfg, log=lambda _: None)
    kinds = [j["type"] for j in client.jobs]
    scores = [j for j in client.jobs if j["type"] == "score"]
    if baselines:
        assert kinds == ["assess", "assess", "score", "score", "finetune", "finetune"]
        assert [(j["model_id"], j["dataset_id"]) for j in scores] == [
            ("mdl_1", "dst_a"), ("mdl_1", "dst_b")
        ]  # fmt: skip
        assert all(j["measures"] == list(BASELINES) for j in scores)
        assert "logme" in BASELINES and not any(m.startswith("ncti") for m in BASELINES)
    else:
        assert kinds == ["assess", "assess", "finetune", "finetune"]
