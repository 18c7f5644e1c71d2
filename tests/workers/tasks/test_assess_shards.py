"""An `assess` job on a test split above the shard threshold embeds it as `embed_shard`
children of the assess job (which waits holding no worker, then merges and goes on to score
and predict), run in process by the embedded worker's own `execute` one after another: its
result is the one of the same job in a service that does not shard, and the stored embedding
is byte for byte the same; cancelling the assess job cancels the shards."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import get_settings
from tests.service.test_api import add_tiny
from tests.workers.tasks.test_grid import drain, upload_and_ingest
from tests.workers.tasks.test_shards import _kids, _service, assert_same_run, embedding_dir
from workers import runner
from workers.tasks.base import JobContext, JobError

# The 48-image test split of `_service`'s dataset (6 classes x 30 images), cut (batch 16)
# into shards of rows 0..16, 16..32 and 32..48.
ENV = {"IIMM_EMBED_SHARD_THRESHOLD": "32", "IIMM_EMBED_SHARD_SIZE": "16"}
ROWS = [[0, 16], [16, 32], [32, 48]]
#: What differs between two services' results of the same job: ids and registered names.
PER_SERVICE = {"model_id", "dataset_id", "model_name", "dataset_name", "embedding_id"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """An embedded API in process whose worker shards splits of more than 32 images."""
    yield from _service(tmp_path_factory.mktemp("assess-shards"), **ENV)


def submit_assess(c: TestClient, archive: Path) -> tuple[str, str, str]:
    """Upload the dataset (its ingest job run here) and a tiny model; submit an assess job."""
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    body = {"type": "assess", "model_id": model, "dataset_id": dataset, "bootstrap": 20}
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"], model, dataset


def _stored(result: dict[str, Any]) -> Path:
    env = runner.worker_env()
    return embedding_dir(env.settings, env.sessions, result["embedding_id"])


def test_a_large_split_is_assessed_from_shards_as_from_one_run(
    service: tuple[TestClient, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    c, archive = service
    job_id, model, dataset = submit_assess(c, archive)
    outcomes = drain()
    assert outcomes[0] == "waiting: waiting for shards", outcomes
    assert outcomes[-1] == "succeeded", outcomes
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    kids = _kids(c, job_id)
    assert [k["type"] for k in kids] == ["embed_shard"] * 3
    assert [[k["params"]["start"], k["params"]["stop"]] for k in kids] == ROWS
    assert all(k["status"] == "succeeded" and k["params"]["split"] == "test" for k in kids)
    sharded = job["result"]
    assert sharded["n"] == 48 and sharded["embeddings_reused"] is False
    stored = shutil.copytree(_stored(sharded), tmp_path / "sharded")
    settings = runner.worker_env().settings
    assert not (Path(settings.artifacts_url) / "shards" / job_id).exists()
    scores = c.get("/v1/scores", params={"model_id": model, "dataset_id": dataset}).json()
    assert scores["items"] and {(s["split"], s["n"]) for s in scores["items"]} == {("test", 48)}

    # the same job in a service that does not shard: one run, the same result and bytes
    for c1, archive1 in _service(
        tmp_path_factory.mktemp("assess-one-run"), IIMM_EMBED_SHARD_THRESHOLD="0"
    ):
        one_id, _, _ = submit_assess(c1, archive1)
        assert drain() == ["succeeded"]
        assert _kids(c1, one_id) == []
        single = c1.get(f"/v1/jobs/{one_id}").json()["result"]
        assert {k: v for k, v in sharded.items() if k not in PER_SERVICE} == {
            k: v for k, v in single.items() if k not in PER_SERVICE
        }
        assert sharded["iimm"]["value"] is not None and sharded["measures"]
        assert_same_run(stored, _stored(single))


def test_an_assess_split_at_the_threshold_is_one_run(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, archive = service
    monkeypatch.setenv("IIMM_EMBED_SHARD_THRESHOLD", "48")
    get_settings.cache_clear()
    runner.worker_env.cache_clear()
    try:
        job_id, _, _ = submit_assess(c, archive)
        assert drain() == ["succeeded"]
    finally:
        monkeypatch.setenv("IIMM_EMBED_SHARD_THRESHOLD", ENV["IIMM_EMBED_SHARD_THRESHOLD"])
        get_settings.cache_clear()
        runner.worker_env.cache_clear()
    assert c.get(f"/v1/jobs/{job_id}").json()["result"]["n"] == 48
    assert _kids(c, job_id) == []


def test_cancelling_an_assess_job_cancels_its_shards(service: tuple[TestClient, Path]) -> None:
    c, archive = service
    job_id, _, _ = submit_assess(c, archive)
    assert runner.execute(job_id) == "waiting: waiting for shards"
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "waiting" and job["progress"]["unit"] == "shards", job
    assert [k["status"] for k in _kids(c, job_id)] == ["queued"] * 3
    assert c.post(f"/v1/jobs/{job_id}:cancel").json()["status"] == "cancelled"
    assert [k["status"] for k in _kids(c, job_id)] == ["cancelled"] * 3
    assert drain() == []
    assert c.get(f"/v1/jobs/{job_id}").json()["result"] is None


def test_a_shard_that_fails_for_good_fails_the_assess_job(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.tasks import HANDLERS

    c, archive = service
    real = HANDLERS["embed_shard"]

    def fail_last(ctx: JobContext) -> Any:
        if ctx.params["index"] == 2:
            raise JobError("image 40 cannot be decoded")
        return real(ctx)

    monkeypatch.setitem(HANDLERS, "embed_shard", fail_last)
    job_id, model, dataset = submit_assess(c, archive)
    drain()
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed", job
    assert "shard 2 (rows 32..48" in job["error"] and "image 40 cannot" in job["error"], job
    scores = c.get("/v1/scores", params={"model_id": model, "dataset_id": dataset}).json()
    assert scores["items"] == []
