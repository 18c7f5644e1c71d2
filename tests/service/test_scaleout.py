"""Scale-out on the production stack with two real Celery workers: a grid's children run on
both and give the serial grid's model; a sharded embedding's shards run on both and give the
single run's bytes, and so do an assess job's shards of its test split; cancelling the parent
stops the children; a worker killed with SIGKILL
mid-child loses nothing; a fine-tune's evaluation fans out as `evaluate` children with the
figures of the evaluation run in one process."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import _postgres_up, _redis_up, redis_db
from tests.service.stack import Stack, drop_database, make_task, production_stack, wait_job, zip_dir
from tests.service.test_api import add_tiny, upload
from tests.service.test_finetune import wait_pruned
from tests.workers.tasks.test_grid import assert_same_grid, assert_same_model, serial_grid
from tests.workers.tasks.test_shards import (
    ROWS,
    SHARD_ENV,
    assert_same_run,
    embedding_dir,
    single_run,
    submit_embed,
)

pytestmark = pytest.mark.skipif(
    not (_postgres_up() and _redis_up()), reason="Postgres or Redis is not running"
)
HYPER = {"epochs": 2, "batch_size": 8, "seed": 5}
GRID = {"lr": [0.001, 0.003, 0.01, 0.03]}


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A production stack with two Celery workers, both consuming before a test submits."""
    data_dir = tmp_path_factory.mktemp("scaleout")
    broker = f"redis://127.0.0.1:6379/{redis_db()}"
    # shards above 64 images; each dataset of an evaluation its own `evaluate` child
    env = {**SHARD_ENV, "IIMM_EVALUATE_GROUP_IMAGES": "1"}
    stack, db_url = production_stack(data_dir, broker, **env)
    try:
        stack.start_worker()
        stack.start_worker()
        stack.wait_workers_ready(2)
        yield stack
    finally:
        stack.stop()
        drop_database(db_url)


@pytest.fixture(scope="module")
def colours(workdir: Path) -> Path:
    root = workdir / "scaleout-colours"
    root.mkdir(exist_ok=True)
    return zip_dir(make_task(root / "data", task="colours", per_class=6), root / "c.zip")


def _grid_job(c: httpx.Client, colours: Path, hyper: dict[str, Any]) -> tuple[str, str, str]:
    dataset, model = upload(c, colours).json()["id"], add_tiny(c)["id"]
    body = {"type": "finetune", "model_id": model, "dataset_id": dataset,
            "hyperparameters": {**hyper, "grid": GRID}, "evaluate_on": []}  # fmt: skip
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"], model, dataset


def _children(c: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    items = c.get("/v1/jobs", params={"parent_id": job_id, "limit": 200}).json()["items"]
    return sorted(items, key=lambda k: k["params"]["index"])


def _wait_child(c: httpx.Client, job_id: str, pred: Any, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kid in _children(c, job_id):
            if pred(kid):
                return kid
        time.sleep(0.2)
    raise TimeoutError(f"no child of {job_id} matched in {timeout}s")


@contextlib.contextmanager
def _in_process(stack: Stack, model: str) -> Iterator[Any]:
    """A `JobContext` in the test process on the stack's settings, database and store (in
    `model`'s project), with the workers' torch threads (their float reductions)."""
    import torch

    from app.artifacts import Storage
    from app.config import Settings
    from app.db import make_engine, make_sessionmaker
    from workers.tasks.base import JobContext

    mp = pytest.MonkeyPatch()
    for key, value in stack.env.items():
        if key.startswith("IIMM_"):
            mp.setenv(key, value)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(stack.env["OMP_NUM_THREADS"]))
    settings = Settings()
    engine = make_engine(settings.db_url)
    try:
        storage = Storage(settings.artifacts_url, cache_dir=settings.data_dir / "cache")
        with engine.connect() as conn:
            from sqlalchemy import text

            project = conn.scalar(text("SELECT project_id FROM base_models WHERE id = :m"),
                                  {"m": model})  # fmt: skip
        yield JobContext("job_serial", project, 1, {}, settings, make_sessionmaker(engine),
                         storage)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        engine.dispose()
        mp.undo()


def _serial(stack: Stack, model: str, dataset: str, out: Path) -> dict[str, Any]:
    """The library's serial grid, here in the test process, on the stack's database/store."""
    with _in_process(stack, model) as ctx:
        return serial_grid(ctx, model, dataset, HYPER, GRID, out).to_dict()


def _final(root: Path) -> dict[str, Any]:
    import torch

    return torch.load(root / "final.pt", map_location="cpu", weights_only=True)


def test_grid_children_run_on_both_workers_and_give_the_serial_model(
    two: Stack, colours: Path, tmp_path: Path
) -> None:
    with two.client(two.new_key(f"grid-{uuid.uuid4().hex[:6]}")) as c:
        job_id, model, dataset = _grid_job(c, colours, HYPER)
        job = wait_job(c, job_id, timeout=600)
        assert job["status"] == "succeeded", job
        kids = _children(c, job_id)
    assert [k["status"] for k in kids] == ["succeeded"] * 4
    # Each solo worker holds one message at a time (prefetch 1, acks late), both consume
    # before submission, and a child trains for far longer than a message takes to arrive.
    assert {k["worker"] for k in kids} == {two.worker_id(p) for p in two.workers}
    best = max(kids, key=lambda k: (k["result"]["best_val_acc"], -k["params"]["index"]))
    result = job["result"]
    assert result["config"] == best["result"]["config"] and result["grid_failed"] == []
    artifacts = two.data_dir / "artifacts" / "finetune"
    wait_pruned(artifacts / job_id)  # the chosen point's parameters stay, the grid's go
    serial = _serial(two, model, dataset, tmp_path / "serial")
    assert_same_grid(result, serial)
    assert_same_model(_final(artifacts / job_id), _final(tmp_path / "serial"))


@pytest.fixture(scope="module")
def shapes(workdir: Path) -> Path:
    root = workdir / "scaleout-shapes"
    root.mkdir(exist_ok=True)
    return zip_dir(make_task(root / "data", task="shapes", per_class=30), root / "s.zip")


def test_sharded_embedding_on_two_workers_gives_the_single_runs_bytes(
    two: Stack, shapes: Path, tmp_path: Path
) -> None:
    with two.client(two.new_key(f"shards-{uuid.uuid4().hex[:6]}")) as c:
        # the stack's workers run the ingest job (not this process: its drain() is embedded)
        job_id, model, dataset = submit_embed(c, shapes, lambda c, a: upload(c, a).json()["id"])
        job = wait_job(c, job_id, timeout=600)
        assert job["status"] == "succeeded", job
        kids = sorted(c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"],
                      key=lambda k: k["params"]["index"])  # fmt: skip
    assert [(k["type"], k["status"]) for k in kids] == [("embed_shard", "succeeded")] * 3
    assert [[k["params"]["start"], k["params"]["stop"]] for k in kids] == ROWS
    # three messages published at once to two idle solo workers holding one message each
    assert {k["worker"] for k in kids} == {two.worker_id(p) for p in two.workers}
    assert [s["worker"] for s in job["result"]["shards"]] == [k["worker"] for k in kids]
    with _in_process(two, model) as ctx:
        single = single_run(ctx, model, dataset, tmp_path / "single")
        stored = embedding_dir(ctx.settings, ctx.sessions, job["result"]["embedding_id"])
    assert_same_run(stored, single)
    assert not (two.data_dir / "artifacts" / "shards" / job_id).exists()


def test_an_assess_job_shards_its_large_test_split_on_the_workers(
    two: Stack, workdir: Path, tmp_path: Path
) -> None:
    """13 test images per class (78 rows, above the stack's threshold of 64): the assess job
    is the parent of the `embed_shard` children, waits for them on the workers, stores the
    single run's bytes and scores them."""
    root = workdir / "scaleout-assess"
    root.mkdir(exist_ok=True)
    archive = zip_dir(make_task(root / "data", task="shapes", per_class=52), root / "a.zip")
    with two.client(two.new_key(f"assess-{uuid.uuid4().hex[:6]}")) as c:
        dataset, model = upload(c, archive).json()["id"], add_tiny(c)["id"]
        body = {"type": "assess", "model_id": model, "dataset_id": dataset, "bootstrap": 20}
        resp = c.post("/v1/jobs", json=body)
        assert resp.status_code == 202, resp.text
        job = wait_job(c, resp.json()["id"], timeout=600)
        assert job["status"] == "succeeded", job
        kids = _children(c, job["id"])
    assert [(k["type"], k["status"]) for k in kids] == [("embed_shard", "succeeded")] * 2
    assert [k["params"]["split"] for k in kids] == ["test"] * 2
    assert {k["worker"] for k in kids} <= {two.worker_id(p) for p in two.workers}
    result = job["result"]
    assert result["n"] == 78 and result["iimm"]["value"] is not None, result
    with _in_process(two, model) as ctx:
        single = single_run(ctx, model, dataset, tmp_path / "single", split="test")
        stored = embedding_dir(ctx.settings, ctx.sessions, result["embedding_id"])
    assert_same_run(stored, single)
    assert not (two.data_dir / "artifacts" / "shards" / job["id"]).exists()


def _serial_evaluation(
    stack: Stack, model: str, ft_id: str, key: str, targets: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fine-tuned (stored checkpoint under `key`) and zero-shot metrics evaluated in
    the test process as the serial fine-tune does (`workers.tasks.training.conclude`)."""
    from workers.ml.finetune.runtime import cpu_threads
    from workers.tasks.accuracy import Target, evaluate_all
    from workers.tasks.datasets import base_model_row, dataset_rows, load_base
    from workers.tasks.training import load_tuned

    with _in_process(stack, model) as ctx:
        loaded = load_base(ctx, base_model_row(ctx, model))
        rows = dataset_rows(ctx, targets)
        with cpu_threads(loaded.device, ctx.settings.finetune_threads):
            tuned = Target(model, ft_id, load_tuned(ctx, loaded, key))
            ft, _ = evaluate_all(ctx, loaded, tuned, rows, "test")
            zs, _ = evaluate_all(ctx, loaded, Target(model, None, loaded.model), rows, "test")
    return ft, zs


def test_a_fine_tunes_evaluation_fans_out_with_the_serial_figures(
    two: Stack, colours: Path, shapes: Path
) -> None:
    figures = ("top1", "top5", "mean_per_class_recall", "n", "per_class_recall")
    with two.client(two.new_key(f"fteval-{uuid.uuid4().hex[:6]}")) as c:
        train, model = upload(c, colours).json()["id"], add_tiny(c)["id"]
        targets = [train, upload(c, shapes).json()["id"]]
        body = {"type": "finetune", "model_id": model, "dataset_id": train,
                "hyperparameters": HYPER, "evaluate_on": targets}  # fmt: skip
        job_id = c.post("/v1/jobs", json=body).json()["id"]
        job = wait_job(c, job_id, timeout=600)
        assert job["status"] == "succeeded", job
        kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
        ft_id = job["result"]["finetuned_model_id"]
        rows = {
            (r["model_id"], r["dataset_id"]): r
            for m in (ft_id, model)
            for r in c.get("/v1/evaluations", params={"model_id": m}).json()["items"]
        }
    assert all(k["type"] == "evaluate" and k["status"] == "succeeded" and k["worker"]
               for k in kids)  # fmt: skip
    assert sorted((k["params"]["model_id"], *k["params"]["dataset_ids"]) for k in kids) == (
        sorted((m, d) for m in (ft_id, model) for d in targets)
    )
    ft, zs = _serial_evaluation(two, model, ft_id, f"finetune/{job_id}", targets)
    assert job["result"]["test_top1"] == {d: m["top1"] for d, m in ft.items()}
    assert job["result"]["zero_shot_top1"] == {d: m["top1"] for d, m in zs.items()}
    for ref, metrics in ((ft_id, ft), (model, zs)):
        for dataset in targets:
            row = rows[(ref, dataset)]
            assert {k: row[k] for k in figures} == {k: metrics[dataset][k] for k in figures}
    _cancel_drops_an_unfinished_model(two, model, job_id, ft_id)


def _cancel_drops_an_unfinished_model(stack: Stack, model: str, job_id: str, ft_id: str) -> None:
    """On Postgres: cancelling a job whose model is still `evaluating` removes the model and
    its fine-tuned rows (the base model's zero-shot rows stay)."""
    from sqlalchemy import func, select, update

    from app.db import session_scope
    from app.jobs.children import cancel_tree
    from app.models import Evaluation, FinetunedModel

    with _in_process(stack, model) as ctx, session_scope(ctx.sessions) as session:
        session.execute(
            update(FinetunedModel).where(FinetunedModel.id == ft_id).values(status="evaluating")
        )
        cancel_tree(session=session, job_id=job_id)
        session.flush()
        assert session.get(FinetunedModel, ft_id) is None
        left = select(func.count()).select_from(Evaluation)
        assert session.scalar(left.where(Evaluation.finetuned_model_id == ft_id)) == 0
        assert session.scalar(left.where(Evaluation.model_ref == model)) == 2


def test_cancelling_the_parent_stops_its_children(two: Stack, colours: Path) -> None:
    with two.client(two.new_key(f"cancel-{uuid.uuid4().hex[:6]}")) as c:
        job_id, _, _ = _grid_job(c, colours, {**HYPER, "epochs": 200, "batch_size": 2})
        _wait_child(c, job_id, lambda k: k["status"] == "running")
        assert c.post(f"/v1/jobs/{job_id}:cancel").json()["status"] == "cancelled"
        for kid in _children(c, job_id):
            done = wait_job(c, kid["id"])
            assert done["status"] == "cancelled", done
        assert wait_job(c, job_id)["status"] == "cancelled"


def test_a_worker_killed_mid_child_loses_nothing(two: Stack, colours: Path) -> None:
    hyper = {**HYPER, "epochs": 6, "batch_size": 2}
    with two.client(two.new_key(f"kill-{uuid.uuid4().hex[:6]}")) as c:
        job_id, _, _ = _grid_job(c, colours, hyper)
        victim = _wait_child(c, job_id, lambda k: k["status"] == "running" and k["worker"])
        (proc,) = [p for p in two.workers if two.worker_id(p) == victim["worker"]]
        two.kill_worker(proc, signal.SIGKILL)
        job = wait_job(c, job_id, timeout=900)
        assert job["status"] == "succeeded", job
        assert job["result"]["grid_failed"] == [] and len(job["result"]["grid"]) == 4
        rerun = c.get(f"/v1/jobs/{victim['id']}").json()
        assert rerun["status"] == "succeeded" and rerun["attempts"] == 2
        assert rerun["worker"] != victim["worker"] and rerun["worker"] == two.worker_id(
            two.workers[0]
        )
    two.start_worker()
