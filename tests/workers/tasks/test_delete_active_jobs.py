"""Deleting a base model or dataset that jobs not final yet name (in process, the jobs run
here by `drain`): refused with 409 counting them as `active_jobs` among the dependents; a
cascade cancels them (nothing is left to run) in the delete's transaction; and a job whose
model or dataset went anyway (a delete racing its submission) fails naming which."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from app.db import session_scope
from app.deletion import DependentsError
from app.models import PretrainedModel
from tests.service.test_api import add_tiny, assert_problem
from tests.workers.tasks.test_grid import drain, upload_and_ingest
from tests.workers.tasks.test_shards import _service
from workers import runner


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    yield from _service(
        tmp_path_factory.mktemp("delete-active"), IIMM_EMBED_SHARD_THRESHOLD="100000"
    )


def _embed(c: TestClient, model: str, dataset: str) -> str:
    body = {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "train"}
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def test_a_refusal_names_the_first_10_active_jobs_and_counts_the_rest() -> None:
    jobs = [f"job_{i:02d}" for i in range(13)]
    exc = DependentsError("model mdl_1", {"scores": 2, "active_jobs": 13}, jobs)
    assert exc.extensions == {"dependents": {"scores": 2, "active_jobs": 13},
                              "active_job_ids": jobs[:10]}  # fmt: skip
    assert exc.detail.endswith("; active jobs: " + ", ".join(jobs[:10]) + " …and 3 more")
    assert "(2 scores, 13 active jobs)" in exc.detail
    only = DependentsError("model mdl_1", {"scores": 2})
    assert only.extensions == {"dependents": {"scores": 2}} and "active jobs:" not in only.detail


def test_active_jobs_refuse_a_delete_and_a_cascade_cancels_them(
    service: tuple[TestClient, Path],
) -> None:
    c, archive = service
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    job = _embed(c, model, dataset)
    assert c.get(f"/v1/jobs/{job}").json()["status"] == "queued"

    for path in (f"/v1/models/{model}", f"/v1/datasets/{dataset}"):
        resp = c.delete(path)
        assert_problem(resp, 409, "(1 active job)", "cascade=true")
        assert resp.json()["dependents"] == {"active_jobs": 1}, resp.json()
        assert resp.json()["active_job_ids"] == [job]
        assert resp.json()["detail"].endswith(f"; active jobs: {job}")
    assert c.get(f"/v1/models/{model}").status_code == 200
    assert c.get(f"/v1/jobs/{job}").json()["status"] == "queued"

    resp = c.delete(f"/v1/models/{model}", params={"cascade": "true"})
    assert resp.status_code == 204, resp.text
    assert c.get(f"/v1/models/{model}").status_code == 404
    cancelled = c.get(f"/v1/jobs/{job}").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"].startswith("cancelled: model ")
    assert cancelled["error"].endswith(f"({model}) deleted with cascade")
    assert drain() == []  # nothing left to run and fail
    # the dataset has no active job left: deleted without a cascade
    assert c.delete(f"/v1/datasets/{dataset}").status_code == 204


def test_a_job_whose_model_went_fails_naming_it(service: tuple[TestClient, Path]) -> None:
    c, archive = service
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    job = _embed(c, model, dataset)
    # as when a delete commits between the job's submission and its run
    with session_scope(runner.worker_env().sessions) as session:
        session.execute(delete(PretrainedModel).where(PretrainedModel.id == model))
    outcomes = drain()
    assert len(outcomes) == 1 and outcomes[0].startswith("failed"), outcomes
    body = c.get(f"/v1/jobs/{job}").json()
    assert body["status"] == "failed"
    assert body["error"] == f"the job's model {model} was deleted before it ran", body["error"]
