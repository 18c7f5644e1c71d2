"""A score records the prompts it rests on, and one with other prompts never replaces it
silently: 409 naming the stored score and its prompts unless the job says `replace`; the same
prompts recompute in place. Through the API of the embedded stack with a real worker."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx

from app.imagedata.prompts import prompts_hash
from tests.service.conftest import SharedStacks
from tests.service.stack import wait_job
from tests.service.test_api import add_tiny, upload

OTHER = ["a blurry photo of a {c}.", "a photo of the small {c}."]


def _done(c: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job = wait_job(c, resp.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def _rows(c: httpx.Client, query: dict[str, str]) -> list[dict[str, Any]]:
    return list(c.get("/v1/scores", params=query).json()["items"])


def test_a_score_with_other_prompts_is_refused_unless_replacing(
    shared_stacks: SharedStacks, shapes_zip: Path
) -> None:
    with shared_stacks.get("embedded").client() as c:
        ref = {"model_id": add_tiny(c)["id"], "dataset_id": upload(c, shapes_zip).json()["id"],
               "split": "test"}  # fmt: skip
        _done(c, {"type": "embed", **ref})
        _done(c, {"type": "embed", **ref, "prompts": OTHER})
        score = {"type": "score", **ref, "measures": ["iimm"]}
        first = _done(c, {**score, "bootstrap": 20})
        query = {**{k: ref[k] for k in ("model_id", "dataset_id", "split")}, "measure": "iimm"}
        (row,) = _rows(c, query)
        assert row["job_id"] == first["id"] and row["ci_low"] is not None
        assert row["prompts"] is None and row["prompts_hash"] == "default"

        refused = c.post("/v1/jobs", json={**score, "prompts": OTHER})
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["score_id"] == row["id"] and problem["prompts_hash"] == "default"
        assert "prompts" not in problem  # the default template
        assert row["id"] in problem["detail"] and "default" in problem["detail"]
        assert "replace" in problem["detail"]
        assert _rows(c, query) == [row]  # nothing queued, nothing replaced

        again = _done(c, score)  # the same prompts: recomputed in place, no question asked
        (row,) = _rows(c, query)
        assert row["job_id"] == again["id"] and row["prompts_hash"] == "default"

        replaced = _done(c, {**score, "prompts": OTHER, "replace": True})
        (row,) = _rows(c, query)
        assert row["job_id"] == replaced["id"]
        assert row["prompts"] == OTHER and row["prompts_hash"] == prompts_hash(OTHER)
        # and now the default prompts are the other ones
        back = c.post("/v1/jobs", json=score)
        assert back.status_code == 409 and back.json()["score_id"] == row["id"], back.text


def test_two_queued_scores_with_other_prompts_never_replace_each_other(
    shared_stacks: SharedStacks, shapes_zip: Path
) -> None:
    """Both are accepted (no score yet) while the worker is frozen; whichever runs second
    finds the first one's score and fails naming it instead of replacing it."""
    stack = shared_stacks.get("embedded")
    with stack.client() as c:
        ref = {"model_id": add_tiny(c)["id"], "dataset_id": upload(c, shapes_zip).json()["id"],
               "split": "test"}  # fmt: skip
        _done(c, {"type": "embed", **ref})
        _done(c, {"type": "embed", **ref, "prompts": OTHER})
        score = {"type": "score", **ref, "measures": ["iimm"]}
        stack.signal_workers(signal.SIGSTOP)
        try:
            ids = [c.post("/v1/jobs", json=body).json()["id"]
                   for body in (score, {**score, "prompts": OTHER})]  # fmt: skip
        finally:
            stack.signal_workers(signal.SIGCONT)
        jobs = [wait_job(c, i) for i in ids]
        assert sorted(j["status"] for j in jobs) == ["failed", "succeeded"], jobs
        won = next(j for j in jobs if j["status"] == "succeeded")
        lost = next(j for j in jobs if j["status"] == "failed")
        query = {**{k: ref[k] for k in ("model_id", "dataset_id", "split")}, "measure": "iimm"}
        (row,) = _rows(c, query)
        assert row["job_id"] == won["id"]
        assert row["id"] in lost["error"] and "replace" in lost["error"]
        assert row["prompts_hash"] == prompts_hash(won["params"].get("prompts"))
