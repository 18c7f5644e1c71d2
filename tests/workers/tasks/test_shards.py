"""A large `embed` job fanned out as `embed_shard` child jobs, run in process by the embedded
worker's own `execute` one after another: the stored arrays and statistics are byte for byte
those of one worker's run of the whole split; the shards are gone afterwards; a crashed shard
is retried; a shard that fails for good fails the parent, naming it; cancelling the parent
cancels the shards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings, get_settings
from app.db import session_scope
from tests.service.stack import make_task, zip_dir
from tests.service.test_api import add_tiny, upload
from tests.workers.tasks.test_grid import drain, upload_and_ingest
from workers import runner
from workers.tasks.base import JobContext, JobError

# 6 classes x 30 images: a train split of 132 rows, cut (batch 16) into shards of rows
# 0..48, 48..96 and 96..132; classes straddle the cuts, where adding the shards' own float64
# sums would change the last bits of the statistics (tests/workers/ml/test_resume_shards.py).
SHARD_ENV = {"IIMM_EMBED_BATCH_SIZE": "16", "IIMM_EMBED_SHARD_THRESHOLD": "64",
             "IIMM_EMBED_SHARD_SIZE": "48"}  # fmt: skip
ROWS = [[0, 48], [48, 96], [96, 132]]
FILES = ("images.npy", "labels.npy", "topk.npy", "index.npy", "texts.npy", "stats.json")


def _service(data_dir: Path, **env: str) -> Iterator[tuple[TestClient, Path]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("IIMM_DATA_DIR", str(data_dir))
    for key, value in {**SHARD_ENV, **env}.items():
        mp.setenv(key, value)
    get_settings.cache_clear()
    runner.worker_env.cache_clear()
    shapes = make_task(data_dir / "src", task="shapes", per_class=30)
    archive = zip_dir(shapes, data_dir / "shapes.zip")
    try:
        with TestClient(create_app_for(data_dir)) as client:
            key = (data_dir / "admin.key").read_text().strip()
            client.headers["Authorization"] = f"Bearer {key}"
            yield client, archive
    finally:
        runner.worker_env.cache_clear()
        get_settings.cache_clear()
        mp.undo()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """An embedded API in process (SQLite), the in-process worker's environment sharding
    splits of more than 64 images, and a zipped dataset with a 132-image train split."""
    yield from _service(tmp_path_factory.mktemp("shards"))


def create_app_for(data_dir: Path) -> Any:
    from app.main import create_app

    return create_app(Settings(data_dir=data_dir))


def submit_embed(
    c: Any, archive: Path, ingest: Callable[[Any, Path], str] = upload_and_ingest
) -> tuple[str, str, str]:
    """Upload the dataset (`ingest`: upload and wait for its ingest job; by default the
    jobs run in this process) and a tiny model, submit an embed job of the train split."""
    dataset, model = ingest(c, archive), add_tiny(c)["id"]
    body = {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "train"}
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"], model, dataset


def single_run(
    ctx: JobContext, model_id: str, dataset_id: str, out: Path, split: str = "train"
) -> Path:
    """One worker's run of the whole `split` through the embed job's own helpers (the job's
    model and dataset, the setting's batch size), into `out`."""
    from workers.ml.embed import embed_dataset
    from workers.tasks.datasets import load_rows, open_layout
    from workers.tasks.embed import load_model_for

    model_row, dataset_row = load_rows(ctx, model_id, dataset_id)
    model, layout = load_model_for(ctx, model_row), open_layout(ctx, dataset_row)
    batch = ctx.settings.embed_batch_size
    embed_dataset(model, layout, split=split, out_dir=out, batch_size=batch, num_workers=0)
    return out


#: meta.json entries that describe the sharding, not the run (all else is the single run's).
SHARDING = {"merged_from"}


def assert_same_run(stored: Path, single: Path) -> dict[str, Any]:
    """The stored embedding is the single run: the same bytes of every array and of the
    statistics, the same meta.json (run key, measures, zero-shot accuracy, warnings, ...)
    but for the entries that describe the sharding; the stored meta.json."""
    for name in FILES:
        assert (stored / name).read_bytes() == (single / name).read_bytes(), name
    ours, theirs = (json.loads((d / "meta.json").read_text()) for d in (stored, single))
    # the same content uploaded again (another name, folder), or the same weights registered
    # under another spec (`tiny-clip.json` vs `tiny-clip.json@random`: one fingerprint), is
    # embedded under the same key, kept as first stored
    per_upload, per_spec = {"name": None, "location": None}, {"spec": None}
    ours_, theirs_ = (
        {**m, "dataset": {**m["dataset"], **per_upload}, "model": {**m["model"], **per_spec}}
        for m in (ours, theirs)
    )
    assert {k: v for k, v in ours_.items() if k not in SHARDING} == theirs_
    return ours


def embedding_dir(settings: Settings, sessions: Any, embedding_id: str) -> Path:
    from app.models import Embedding

    with session_scope(sessions) as session:
        uri = session.get(Embedding, embedding_id).uri
    return Path(settings.artifacts_url) / uri


def _ctx(model_id: str) -> JobContext:
    from sqlalchemy import select

    from app.models import PretrainedModel

    env = runner.worker_env()
    with session_scope(env.sessions) as session:
        project = session.scalar(
            select(PretrainedModel.project_id).where(PretrainedModel.id == model_id)
        )
    return JobContext("job_single", project, 1, {}, env.settings, env.sessions, env.storage)


def _kids(c: TestClient, job_id: str) -> list[dict[str, Any]]:
    items = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    return sorted(items, key=lambda k: k["params"]["index"])


def test_a_sharded_embedding_is_the_single_runs_bytes(
    service: tuple[TestClient, Path], tmp_path: Path
) -> None:
    c, archive = service
    job_id, model, dataset = submit_embed(c, archive)
    outcomes = drain()
    assert outcomes[0].startswith("waiting") and outcomes[-1] == "succeeded", outcomes
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    kids = _kids(c, job_id)
    assert [k["type"] for k in kids] == ["embed_shard"] * 3
    assert [[k["params"]["start"], k["params"]["stop"]] for k in kids] == ROWS
    assert all(k["status"] == "succeeded" and k["worker"] for k in kids)
    result = job["result"]
    assert [s["rows"] for s in result["shards"]] == ROWS and result["n"] == 132
    assert [s["worker"] for s in result["shards"]] == [k["worker"] for k in kids]
    env = runner.worker_env()
    stored = embedding_dir(env.settings, env.sessions, result["embedding_id"])
    single = single_run(_ctx(model), model, dataset, tmp_path / "single")
    meta = assert_same_run(stored, single)
    # rows 0..48 hold classes 0-2 only: a shard's own count is no warning about the split
    assert result["warnings"] == [] == meta["warnings"]
    assert meta["merged_from"] == [  # the shards' jobs and rows, not their (gone) folders
        {"index": k["params"]["index"], "rows": r, "job_id": k["id"]}
        for k, r in zip(kids, ROWS, strict=True)
    ]
    assert not (Path(env.settings.artifacts_url) / "shards" / job_id).exists()
    # the job's timing adds up its shards' (each embedded its rows) and the merge
    timing, parts = result["timing"], [s["timing"] for s in result["shards"]]
    assert timing["images"] == sum(t["images"] for t in parts) == 132
    assert timing["shards"] == 3
    assert timing["batches"] == sum(t["batches"] for t in parts) == 9
    assert timing["seconds"] == pytest.approx(sum(t["seconds"] for t in parts), abs=1e-3)
    assert timing["images_per_second"] == pytest.approx(132 / timing["seconds"], abs=0.1)
    assert timing["merge_s"] >= 0
    slowest = max(t["seconds"] for t in parts)
    assert timing["critical_path_s"] == pytest.approx(slowest + timing["merge_s"], abs=1e-3)
    scores = c.post("/v1/jobs", json={"type": "score", "model_id": model, "dataset_id": dataset,
                                      "split": "train"})  # fmt: skip
    assert scores.status_code == 202, scores.text  # the merged embedding is a stored one


def test_a_crashed_shard_is_retried_and_the_result_unchanged(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from workers.tasks import HANDLERS

    c, archive = service
    real, crashed = HANDLERS["embed_shard"], []

    def crash_once(ctx: JobContext) -> Any:
        if ctx.params["index"] == 1 and not crashed:
            crashed.append(ctx.job_id)
            raise OSError("the disk went away")
        return real(ctx)

    monkeypatch.setitem(HANDLERS, "embed_shard", crash_once)
    job_id, model, dataset = submit_embed(c, archive)
    drain()
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert [k["attempts"] for k in _kids(c, job_id)] == [1, 2, 1]
    env = runner.worker_env()
    stored = embedding_dir(env.settings, env.sessions, job["result"]["embedding_id"])
    assert_same_run(stored, single_run(_ctx(model), model, dataset, tmp_path / "single"))


def test_a_shard_that_fails_for_good_fails_the_parent(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.tasks import HANDLERS

    c, archive = service
    real = HANDLERS["embed_shard"]

    def fail_second(ctx: JobContext) -> Any:
        if ctx.params["index"] == 1:
            raise JobError("image 50 cannot be decoded")
        return real(ctx)

    monkeypatch.setitem(HANDLERS, "embed_shard", fail_second)
    job_id, _, _ = submit_embed(c, archive)
    drain()
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed", job
    assert "shard 1 (rows 48..96" in job["error"]
    assert "image 50 cannot be decoded" in job["error"]
    assert [k["status"] for k in _kids(c, job_id)] == ["succeeded", "failed", "succeeded"]
    settings = runner.worker_env().settings
    assert not (Path(settings.artifacts_url) / "shards" / job_id).exists()


def test_shards_failing_alike_are_named_once(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every shard failing with the same error: the parent's error says it once, naming the
    shards by their 0-based index (as `result.shards[].index`)."""
    from workers.tasks import HANDLERS

    c, archive = service
    why = "the same long complaint " * 20

    def fail(ctx: JobContext) -> Any:
        raise JobError(why)

    monkeypatch.setitem(HANDLERS, "embed_shard", fail)
    job_id, _, _ = submit_embed(c, archive)
    drain()
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed", job
    assert job["error"].count(why.strip()) == 1, job["error"]
    assert "shards 0–2 failed: " in job["error"]
    assert "in 3 shards (index 0–2" in job["error"]


def _sweep() -> list[str]:
    from app.deletion import sweep_orphans

    env = runner.worker_env()
    with session_scope(env.sessions) as session:
        return sweep_orphans(session, env.storage, min_age_s=0.0)


def test_cancelling_the_parent_cancels_its_shards(service: tuple[TestClient, Path]) -> None:
    c, archive = service
    job_id, _, _ = submit_embed(c, archive)
    assert runner.execute(job_id).startswith("waiting")
    assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "waiting"
    assert [k["status"] for k in _kids(c, job_id)] == ["queued"] * 3
    # a shard stored while the parent waits is the job's: the orphan sweep keeps it ...
    done = Path(runner.worker_env().settings.artifacts_url) / "shards" / job_id / "000"
    done.mkdir(parents=True)
    (done / "images.npy").write_bytes(b"rows")
    assert f"shards/{job_id}" not in _sweep() and done.exists()
    assert c.post(f"/v1/jobs/{job_id}:cancel").json()["status"] == "cancelled"
    assert [k["status"] for k in _kids(c, job_id)] == ["cancelled"] * 3
    assert drain() == []
    # ... and removes it once the job is final (a parent cancelled while waiting never runs)
    assert f"shards/{job_id}" in _sweep() and not done.parent.exists()


def test_a_split_below_the_threshold_is_one_job(service: tuple[TestClient, Path]) -> None:
    c, archive = service
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    body = {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "test"}
    job_id = c.post("/v1/jobs", json=body).json()["id"]
    assert drain() == ["succeeded"]
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["result"]["n"] == 48 and job["result"].get("shards") is None
    assert _kids(c, job_id) == []


def test_shards_in_a_remote_store_merge_to_the_single_runs_bytes(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """With a remote artifact store (fsspec's memory filesystem) the shards are uploaded,
    fetched by the parent, merged and removed from the store and the worker's folders."""
    import fsspec

    root = f"memory://iimm-shards-{tmp_path.name}"
    for c, archive in _service(tmp_path_factory.mktemp("remote"), IIMM_STORAGE_URL=root):
        job_id, model, dataset = submit_embed(c, archive)
        drain()
        job = c.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        env = runner.worker_env()
        assert not env.storage.is_local
        from app.models import Embedding

        with session_scope(env.sessions) as session:
            uri = session.get(Embedding, job["result"]["embedding_id"]).uri
        stored = tmp_path / "stored"
        fsspec.filesystem("memory").get(f"{env.storage.path(uri)}/", str(stored), recursive=True)
        assert_same_run(stored, single_run(_ctx(model), model, dataset, tmp_path / "single"))
        assert not env.storage.exists(f"shards/{job_id}")
        data_dir = env.settings.data_dir
        assert not list(data_dir.rglob(f"*{job_id}*")), "shard copies left on the worker"


def test_the_parent_merges_on_a_worker_that_would_not_shard(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers may differ in settings: a parent whose shards exist merges them wherever it
    runs again, rather than embedding the split once more."""
    c, archive = service
    job_id, _, _ = submit_embed(c, archive)
    assert runner.execute(job_id).startswith("waiting")
    monkeypatch.setenv("IIMM_EMBED_SHARD_THRESHOLD", "0")
    get_settings.cache_clear()
    runner.worker_env.cache_clear()
    try:
        drain()
    finally:
        monkeypatch.setenv("IIMM_EMBED_SHARD_THRESHOLD", SHARD_ENV["IIMM_EMBED_SHARD_THRESHOLD"])
        get_settings.cache_clear()
        runner.worker_env.cache_clear()
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert [s["rows"] for s in job["result"]["shards"]] == ROWS


def test_prompts_the_dataset_cannot_use_are_refused_at_submission(
    service: tuple[TestClient, Path],
) -> None:
    """`clip_benchmark` on a dataset CLIP_benchmark has no templates for, or templates
    without `{c}`, are a 422 naming the value and what is allowed, for every job type that
    takes prompts, before any job (or shard) exists; on a dataset it knows it is accepted."""
    c, archive = service
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    refs = {"model_id": model, "dataset_id": dataset}
    before = c.get("/v1/jobs").json()["items"]
    bodies = [
        {"type": "embed", **refs, "split": "train", "prompts": "clip_benchmark"},
        {"type": "score", **refs, "split": "train", "prompts": "clip_benchmark"},
        {"type": "assess", **refs, "prompts": ["a photo without a placeholder"]},
    ]
    for body in bodies:
        resp = c.post("/v1/jobs", json=body)
        assert resp.status_code == 422, (body, resp.text)
        problem = resp.json()
        assert repr(body["prompts"]) in problem["detail"], problem
        assert problem["errors"][0]["loc"] == ["body", "prompts"], problem
        assert "clip_imagenet_80" in problem["errors"][0]["msg"], problem
    assert "no templates for dataset" in c.post("/v1/jobs", json=bodies[0]).json()["detail"]
    assert c.get("/v1/jobs").json()["items"] == before
    # a dataset named as CLIP_benchmark names one passes the check (score: 409, not embedded)
    eurosat = upload(c, archive, name="EuroSAT", wait=False).json()["id"]
    assert drain() == ["succeeded"]  # its ingest job
    resp = c.post("/v1/jobs", json={**bodies[1], "dataset_id": eurosat})
    assert resp.status_code == 409 and "no embeddings" in resp.json()["detail"], resp.text


def test_a_queued_job_with_prompts_the_dataset_cannot_use_fails_before_fanning_out(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that got past submission with such prompts (queued before the check existed)
    fails once, naming them, with no shard created."""
    import app.jobtype

    c, archive = service
    dataset, model = upload_and_ingest(c, archive), add_tiny(c)["id"]
    monkeypatch.setattr(app.jobtype, "require_prompts", lambda dataset, prompts: None)
    body = {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "train",
            "prompts": "clip_benchmark"}  # fmt: skip
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    drain()
    job = c.get(f"/v1/jobs/{resp.json()['id']}").json()
    assert job["status"] == "failed", job
    assert job["error"].count("CLIP_benchmark has no templates for dataset") == 1, job["error"]
    assert _kids(c, job["id"]) == []
