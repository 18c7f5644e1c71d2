"""A `finetune` grid fanned out as child jobs, run in process by the embedded worker's own
`execute` one job after another: the same model and summary as the library's serial grid,
failed points reported, cancellation of the parent reaching its children."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from app.config import Settings, get_settings
from app.db import session_scope
from app.jobs import claims
from app.main import create_app
from tests.service.stack import make_task, zip_dir
from tests.service.test_api import add_tiny, upload
from workers import runner
from workers.tasks.base import JobContext

HYPER = {"epochs": 2, "batch_size": 8, "seed": 3}
GRID = {"lr": [0.001, 0.01, 0.03], "weight_decay": [0.0001]}


def in_process_service(data_dir: Path, **env: str) -> Iterator[tuple[TestClient, Path]]:
    """An embedded API in process (SQLite) on `data_dir`, the environment the in-process
    worker reads (`env` added) and a zipped colours dataset."""
    mp = pytest.MonkeyPatch()
    mp.setenv("IIMM_DATA_DIR", str(data_dir))
    for name, value in env.items():
        mp.setenv(name, value)
    get_settings.cache_clear()
    runner.worker_env.cache_clear()
    colours = zip_dir(make_task(data_dir / "src", task="colours", per_class=6), data_dir / "c.zip")
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        client.headers["Authorization"] = f"Bearer {(data_dir / 'admin.key').read_text().strip()}"
        yield client, colours
    runner.worker_env.cache_clear()
    get_settings.cache_clear()
    mp.undo()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """An embedded API in process (SQLite) and the environment the in-process worker reads."""
    yield from in_process_service(tmp_path_factory.mktemp("grid"), IIMM_EMBED_BATCH_SIZE="16")


def drain() -> list[str]:
    """Run queued jobs one at a time, as the embedded worker does, until none is left."""
    env, outcomes = runner.worker_env(), []
    while True:
        with session_scope(env.sessions) as session:
            job_id = claims.next_queued(session=session, queues=["gpu", "cpu"])
        if job_id is None:
            return outcomes
        outcomes.append(runner.execute(job_id))


def upload_and_ingest(c: TestClient, archive: Path) -> str:
    """Upload `archive` and run the queued jobs here (its ingest job); the ready dataset's id."""
    dataset = upload(c, archive, wait=False).json()  # type: ignore[arg-type]
    drain()  # the ingest job (and any job an earlier test left queued)
    assert c.get(f"/v1/jobs/{dataset['job_id']}").json()["status"] == "succeeded"
    assert c.get(f"/v1/datasets/{dataset['id']}").json()["status"] == "ready"
    return str(dataset["id"])


def _final(root: Path, key: str) -> dict[str, Any]:
    blob = (root / key / "final.pt").read_bytes()
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def serial_grid(
    ctx: Any, model_id: str, dataset_id: str, hyper: dict[str, Any], grid: dict[str, Any],
    out: Path,
) -> Any:  # fmt: skip
    """The library's serial grid on a job's data, through the worker's own helpers."""
    from workers.ml.finetune import FinetuneConfig, finetune
    from workers.ml.finetune.runtime import cpu_threads
    from workers.tasks.accuracy import templates_of
    from workers.tasks.datasets import base_model_row, dataset_rows, load_base, open_layout
    from workers.tasks.training import _train_val

    loaded = load_base(ctx, base_model_row(ctx, model_id))
    (row,) = dataset_rows(ctx, [dataset_id])
    layout = open_layout(ctx, row)
    train, val = _train_val(layout, loaded.preprocess, dataset_id)
    config = FinetuneConfig.from_dict({**hyper, "method": "full", "grid": grid}).validate()
    with cpu_threads(torch.device("cpu"), ctx.settings.finetune_threads):  # as a job trains
        return finetune(
            copy.deepcopy(loaded.model), loaded.tokenizer, train, val, layout.class_names,
            templates_of(layout), config, checkpoint_dir=out, device="cpu",
        )  # fmt: skip


def assert_same_model(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Two `final.pt` artifacts hold the same config and bit-identical parameters."""
    assert ours["config"] == theirs["config"] and set(ours["params"]) == set(theirs["params"])
    for name, tensor in theirs["params"].items():
        assert torch.equal(ours["params"][name], tensor), name


def assert_same_grid(result: dict[str, Any], serial: dict[str, Any]) -> None:
    """A fanned-out grid job's result summarises the same runs as the serial grid's."""
    for key in ("config", "best_epoch", "best_val_acc", "history", "trainable_params"):
        assert result[key] == serial[key], key
    assert [
        (g["index"], g["config"], g["best_val_acc"], g["best_epoch"]) for g in result["grid"]
    ] == [(g["index"], g["config"], g["best_val_acc"], g["best_epoch"]) for g in serial["grid"]]


def _project(model_id: str) -> str:
    from sqlalchemy import select

    from app.models import PretrainedModel

    with session_scope(runner.worker_env().sessions) as session:
        return session.scalar(
            select(PretrainedModel.project_id).where(PretrainedModel.id == model_id)
        )


def _submit(c: TestClient, model_id: str, dataset_id: str, grid: dict[str, Any]) -> str:
    body = {"type": "finetune", "model_id": model_id, "dataset_id": dataset_id,
            "hyperparameters": {**HYPER, "grid": grid}, "evaluate_on": [dataset_id]}  # fmt: skip
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_grid_children_give_the_serial_grid(
    service: tuple[TestClient, Path], tmp_path: Path
) -> None:
    c, colours = service
    data_dir = runner.worker_env().settings.data_dir
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    job_id = _submit(c, model, dataset, GRID)
    outcomes = drain()
    assert outcomes[0].startswith("waiting") and outcomes[-1] == "succeeded", outcomes
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    assert len(kids) == 3 and {k["type"] for k in kids} == {"finetune_point"}
    assert all(k["status"] == "succeeded" and k["parent_id"] == job_id for k in kids)
    assert all(k["worker"] and k["run_s"] is not None and k["queue_wait_s"] is not None
               for k in [job, *kids])  # fmt: skip

    env = runner.worker_env()
    ctx = JobContext("job_serial", _project(model), 1, {}, env.settings, env.sessions,
                     env.storage)  # fmt: skip
    serial = serial_grid(ctx, model, dataset, HYPER, GRID, tmp_path / "serial").to_dict()
    result = job["result"]
    assert_same_grid(result, serial)
    assert result["grid_failed"] == []
    ours = _final(data_dir / "artifacts", f"finetune/{job_id}")
    assert_same_model(ours, _final(tmp_path, "serial"))
    # once the parent succeeded only the chosen point's parameters stay (children's go)
    kept = data_dir / "artifacts" / "finetune" / job_id
    assert [p.name for p in kept.iterdir()] == ["final.pt"]
    ftm = c.get(f"/v1/finetuned-models/{result['finetuned_model_id']}").json()
    assert ftm["val_accuracy"] == serial["best_val_acc"]


def test_a_failed_point_is_reported_and_the_rest_concluded(
    service: tuple[TestClient, Path],
) -> None:
    c, colours = service
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    job_id = _submit(c, model, dataset, {"lr": [0.001, 0.01]})
    assert runner.execute(job_id).startswith("waiting")
    kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    assert {k["status"] for k in kids} == {"queued"}
    doomed = max(kids, key=lambda k: k["params"]["index"])
    assert c.post(f"/v1/jobs/{doomed['id']}:cancel").json()["status"] == "cancelled"
    drain()
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert [g["index"] for g in job["result"]["grid"]] == [0]
    (failed,) = job["result"]["grid_failed"]
    assert failed["index"] == 1 and failed["job_id"] == doomed["id"]
    assert failed["status"] == "cancelled"


def test_cancelling_the_parent_cancels_its_children(service: tuple[TestClient, Path]) -> None:
    c, colours = service
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    job_id = _submit(c, model, dataset, {"lr": [0.001, 0.01]})
    outcome = runner.execute(job_id)
    assert outcome.startswith("waiting"), outcome
    assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "waiting"
    assert c.post(f"/v1/jobs/{job_id}:cancel").json()["status"] == "cancelled"
    kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    assert len(kids) == 2 and {k["status"] for k in kids} == {"cancelled"}
    assert drain() == []


def _evaluate(c: TestClient, model: str, datasets: list[str]) -> tuple[dict[str, Any], list]:
    body = {"type": "evaluate", "model_id": model, "dataset_ids": datasets}
    job_id = c.post("/v1/jobs", json=body).json()["id"]
    drain()
    kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    return c.get(f"/v1/jobs/{job_id}").json(), kids


def _inline_and_fanned(
    c: TestClient, monkeypatch: pytest.MonkeyPatch, model: str, datasets: list[str]
) -> tuple[dict[str, Any], dict[str, Any], list]:
    """An evaluate job run whole, then the same fanned out one child per dataset."""
    inline, none = _evaluate(c, model, datasets)
    assert inline["status"] == "succeeded" and none == [], inline
    monkeypatch.setenv("IIMM_EVALUATE_GROUP_IMAGES", "1")  # every dataset its own group
    get_settings.cache_clear()
    runner.worker_env.cache_clear()
    try:
        fanned, kids = _evaluate(c, model, datasets)
    finally:
        monkeypatch.delenv("IIMM_EVALUATE_GROUP_IMAGES")
        get_settings.cache_clear()
        runner.worker_env.cache_clear()
    assert fanned["status"] == "succeeded", fanned
    assert sorted(k["params"]["dataset_ids"][0] for k in kids) == sorted(datasets)
    assert all(k["status"] == "succeeded" and len(k["params"]["dataset_ids"]) == 1 for k in kids)
    assert fanned["result"]["metrics"] == inline["result"]["metrics"]
    assert fanned["result"]["failed"] == {}
    return inline, fanned, kids


def _small_datasets(c: TestClient, seeds: tuple[int, ...]) -> list[str]:
    data_dir = runner.worker_env().settings.data_dir
    zips = [zip_dir(make_task(data_dir / f"t{s}", per_class=3, seed=s), data_dir / f"t{s}.zip")
            for s in seeds]  # fmt: skip
    return [upload_and_ingest(c, z) for z in zips]


def test_an_evaluation_fans_out_in_groups_with_the_same_figures(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, colours = service
    datasets = [upload_and_ingest(c, colours), *_small_datasets(c, (11, 12))]
    _, fanned, _ = _inline_and_fanned(c, monkeypatch, add_tiny(c)["id"], datasets)
    assert fanned["result"]["zero_shot"] is True


def test_a_fine_tuned_models_evaluation_fans_out_with_the_same_figures(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each child loads the base model and the fine-tuned checkpoint; the figures and the
    evaluation rows are those of the evaluation run whole."""
    c, colours = service
    train, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    body = {"type": "finetune", "model_id": model, "dataset_id": train,
            "hyperparameters": HYPER, "evaluate_on": []}  # fmt: skip
    job_id = c.post("/v1/jobs", json=body).json()["id"]
    drain()
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    ftm = job["result"]["finetuned_model_id"]
    datasets = [train, *_small_datasets(c, (13, 14))]
    inline, fanned, _ = _inline_and_fanned(c, monkeypatch, ftm, datasets)
    assert fanned["result"]["zero_shot"] is False
    rows = c.get("/v1/evaluations", params={"model_id": ftm}).json()["items"]
    assert {r["dataset_id"]: r["top1"] for r in rows} == {
        d: m["top1"] for d, m in inline["result"]["metrics"].items()
    }


def test_size_groups_share_a_model_load_until_the_bound() -> None:
    from workers.tasks.evaluate import size_groups

    sizes = zip("abcde", (5, 5, 30, 1, 1), strict=True)
    rows = [{"id": i, "splits": {"test": n}} for i, n in sizes]
    assert size_groups(rows, "test", 10) == [["a", "b"], ["c"], ["d", "e"]]
    assert size_groups(rows, "test", 100) == [list("abcde")]
    assert size_groups(rows, "val", 1) == [list("abcde")]  # sizes unknown: one group


def test_grid_points_train_with_the_fine_tune_thread_setting(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each `finetune_point` child (and a serial fine-tune) trains with IIMM_FINETUNE_THREADS
    CPU threads, read inside its run, and gives the process its own count back."""
    c, colours = service
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    before = torch.get_num_threads()
    wanted = before + 1  # differs from what the process runs with
    monkeypatch.setenv("IIMM_FINETUNE_THREADS", str(wanted))
    get_settings.cache_clear()
    runner.worker_env.cache_clear()
    try:
        grid_job = _submit(c, model, dataset, {"lr": [0.001, 0.01]})
        body = {"type": "finetune", "model_id": model, "dataset_id": dataset,
                "hyperparameters": HYPER, "evaluate_on": [dataset]}  # fmt: skip
        serial_job = c.post("/v1/jobs", json=body).json()["id"]
        drain()
    finally:
        monkeypatch.delenv("IIMM_FINETUNE_THREADS")
        get_settings.cache_clear()
        runner.worker_env.cache_clear()
    assert torch.get_num_threads() == before
    kids = c.get("/v1/jobs", params={"parent_id": grid_job}).json()["items"]
    assert len(kids) == 2 and all(k["status"] == "succeeded" for k in kids), kids
    assert [k["result"]["cpu_threads"] for k in kids] == [wanted, wanted]
    for job_id in (grid_job, serial_job):
        job = c.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["result"]["cpu_threads"] == wanted, job


def test_keeping_decoded_images_between_epochs_trains_the_same_model(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fine-tune that keeps its preprocessed images between epochs (the default) and one
    that decodes them on every read give bit-identical parameters and the same history."""
    from workers.tasks import training

    c, colours = service
    data_dir = runner.worker_env().settings.data_dir
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    body = {"type": "finetune", "model_id": model, "dataset_id": dataset,
            "hyperparameters": {**HYPER, "epochs": 3}, "evaluate_on": [dataset]}  # fmt: skip
    results = {}
    for budget in (training.DECODED_CACHE_BYTES, 0):
        monkeypatch.setattr(training, "DECODED_CACHE_BYTES", budget)
        job_id = c.post("/v1/jobs", json=body).json()["id"]
        drain()
        job = c.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        results[budget] = (job["result"], _final(data_dir / "artifacts", f"finetune/{job_id}"))
    (kept, kept_final), (decoded, decoded_final) = results.values()
    assert kept["history"] == decoded["history"] and kept["test_top1"] == decoded["test_top1"]
    assert_same_model(kept_final, decoded_final)


@contextlib.contextmanager
def _groups_of_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The in-process worker with IIMM_EVALUATE_GROUP_IMAGES=1: each dataset a group."""
    monkeypatch.setenv("IIMM_EVALUATE_GROUP_IMAGES", "1")
    get_settings.cache_clear()
    runner.worker_env.cache_clear()
    try:
        yield
    finally:
        monkeypatch.delenv("IIMM_EVALUATE_GROUP_IMAGES")
        get_settings.cache_clear()
        runner.worker_env.cache_clear()


def _finetune(c: TestClient, model: str, train: str, targets: list[str],
              grid: dict[str, Any] | None) -> str:  # fmt: skip
    hyper = HYPER if grid is None else {**HYPER, "grid": grid}
    body = {"type": "finetune", "model_id": model, "dataset_id": train,
            "hyperparameters": hyper, "evaluate_on": targets}  # fmt: skip
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def _rows(c: TestClient, model_ref: str) -> dict[str, dict[str, Any]]:
    rows = c.get("/v1/evaluations", params={"model_id": model_ref, "limit": 200}).json()
    return {r["dataset_id"]: r for r in rows["items"]}


FIGURES = ("top1", "top5", "mean_per_class_recall", "n", "per_class_recall", "split")


@pytest.mark.parametrize("grid", [None, {"lr": [0.001, 0.01]}], ids=["serial", "grid"])
def test_a_fine_tunes_evaluation_fans_out_with_the_serial_result(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch,
    grid: dict[str, Any] | None,
) -> None:  # fmt: skip
    """The same fine-tune (same seed) evaluated in the parent and fanned out as `evaluate`
    children (one per dataset and model): the same result fields and evaluation figures;
    the zero-shot rows the first wrote are kept (only missing ones are written)."""
    c, colours = service
    train, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    targets = [train, *_small_datasets(c, (21, 22))]
    inline_id = _finetune(c, model, train, targets, grid)
    drain()
    inline = c.get(f"/v1/jobs/{inline_id}").json()
    assert inline["status"] == "succeeded", inline
    inline_kids = c.get("/v1/jobs", params={"parent_id": inline_id}).json()["items"]
    assert {k["type"] for k in inline_kids} <= {"finetune_point"}
    zero_shot_before = _rows(c, model)
    assert set(zero_shot_before) == set(targets)
    with _groups_of_one(monkeypatch):
        fanned_id = _finetune(c, model, train, targets, grid)
        outcomes = drain()
    assert outcomes[-1] == "succeeded", outcomes
    fanned = c.get(f"/v1/jobs/{fanned_id}").json()
    assert fanned["status"] == "succeeded", fanned
    kids = c.get("/v1/jobs", params={"parent_id": fanned_id, "limit": 200}).json()["items"]
    evals = [k for k in kids if k["type"] == "evaluate"]
    ft_id = fanned["result"]["finetuned_model_id"]
    assert all(k["parent_id"] == fanned_id and k["status"] == "succeeded" for k in kids)
    assert sorted((k["params"]["model_id"], *k["params"]["dataset_ids"]) for k in evals) == (
        sorted((m, d) for m in (ft_id, model) for d in targets)
    )
    ours, theirs = dict(fanned["result"]), dict(inline["result"])
    assert ours.pop("finetuned_model_id") != theirs.pop("finetuned_model_id")
    if grid is not None:  # the points' job ids differ
        ours["grid"] = [{**g, "job_id": None} for g in ours["grid"]]
        theirs["grid"] = [{**g, "job_id": None} for g in theirs["grid"]]
    assert ours == theirs
    assert set(ours["test_top1"]) == set(targets)
    inline_rows, fanned_rows = (
        _rows(c, theirs_id := inline["result"]["finetuned_model_id"]),
        (_rows(c, ft_id)),
    )
    assert theirs_id != ft_id and set(fanned_rows) == set(targets)
    for dataset in targets:
        for key in FIGURES:
            assert fanned_rows[dataset][key] == inline_rows[dataset][key], (dataset, key)
    assert _rows(c, model) == zero_shot_before
    ftm = c.get(f"/v1/finetuned-models/{ft_id}").json()
    assert ftm["status"] == "ready" and ftm["val_accuracy"] == ours["best_val_acc"]
    data_dir = runner.worker_env().settings.data_dir
    kept = data_dir / "artifacts" / "finetune" / fanned_id
    assert [p.name for p in kept.iterdir()] == ["final.pt"]


def _fanned_and_waiting(
    c: TestClient, colours: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, list[dict[str, Any]], str, list[str]]:
    """A fine-tune trained by its first run and waiting on its evaluation children."""
    train, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    targets = [train, *_small_datasets(c, (23,))]
    with _groups_of_one(monkeypatch):
        job_id = _finetune(c, model, train, targets, None)
        outcome = runner.execute(job_id)
    assert outcome.startswith("waiting"), outcome
    kids = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    assert len(kids) == 4 and {k["status"] for k in kids} == {"queued"}
    (ftm,) = [m for m in c.get("/v1/finetuned-models").json()["items"] if m["job_id"] == job_id]
    assert ftm["status"] == "evaluating"
    return job_id, kids, ftm["id"], targets


def test_cancelling_a_fine_tune_cancels_its_evaluation_children(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, colours = service
    job_id, _kids, ftm, _ = _fanned_and_waiting(c, colours, monkeypatch)
    assert c.post(f"/v1/jobs/{job_id}:cancel").json()["status"] == "cancelled"
    after = c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]
    assert len(after) == 4 and {k["status"] for k in after} == {"cancelled"}
    assert drain() == []
    assert c.get(f"/v1/finetuned-models/{ftm}").status_code == 404
    # no model points to the checkpoint any more: the cancel removed it
    data_dir = runner.worker_env().settings.data_dir
    assert not (data_dir / "artifacts" / "finetune" / job_id).exists()


def test_a_failed_evaluation_child_fails_the_fine_tune_naming_its_dataset(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, colours = service
    job_id, kids, ftm, targets = _fanned_and_waiting(c, colours, monkeypatch)
    doomed = next(k for k in kids if k["params"]["dataset_ids"] == [targets[1]])
    assert c.post(f"/v1/jobs/{doomed['id']}:cancel").json()["status"] == "cancelled"
    drain()
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed", job
    assert targets[1] in job["error"] and targets[0] not in job["error"], job["error"]
    assert c.get(f"/v1/finetuned-models/{ftm}").status_code == 404
    assert _rows(c, ftm) == {}


def _evaluated_and_queued(
    c: TestClient, colours: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str, str, list[str]]:
    """A fine-tune whose evaluation children all succeeded: the parent queued to conclude,
    its model still `evaluating`. (job id, model id, base model id, datasets)"""
    job_id, kids, ftm, targets = _fanned_and_waiting(c, colours, monkeypatch)
    with _groups_of_one(monkeypatch):
        assert [runner.execute(k["id"]) for k in kids] == ["succeeded"] * len(kids)
    assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    model = c.get(f"/v1/finetuned-models/{ftm}").json()
    assert model["status"] == "evaluating"
    assert set(_rows(c, ftm)) == set(targets) == set(_rows(c, model["base_model_id"]))
    return job_id, ftm, model["base_model_id"], targets


def _assert_dropped(c: TestClient, ftm: str, base: str, targets: list[str]) -> None:
    """The `evaluating` model and its fine-tuned rows are gone; the zero-shot rows stay."""
    assert c.get(f"/v1/finetuned-models/{ftm}").status_code == 404
    assert _rows(c, ftm) == {}
    assert set(_rows(c, base)) == set(targets)


def test_a_fine_tune_failed_by_the_reaper_leaves_no_evaluating_model(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker concluding the fine-tune is lost on its last attempt (lease expired): the
    reaper fails the job and removes the model in that transaction."""
    from datetime import timedelta

    from sqlalchemy import update

    from app.db import utcnow
    from app.jobs.reaper import reap_once
    from app.models import Job

    c, colours = service
    job_id, ftm, base, targets = _evaluated_and_queued(c, colours, monkeypatch)
    env = runner.worker_env()
    with session_scope(env.sessions) as session:
        assert claims.claim(session=session, job_id=job_id, worker_id="lost:1", lease_s=60)
        session.execute(  # the lost worker's last attempt, its lease run out
            update(Job)
            .where(Job.id == job_id)
            .values(max_attempts=Job.attempts, lease_expires_at=utcnow() - timedelta(hours=1))
        )
    assert reap_once(env.sessions, env.settings) >= 1
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and "lost" in job["error"], job
    _assert_dropped(c, ftm, base, targets)


def test_a_fine_tune_crashing_past_its_attempts_leaves_no_evaluating_model(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The concluding run crashes on every attempt (its training summary is gone): once
    the retries are spent the job fails and the model goes with that failure."""
    c, colours = service
    job_id, ftm, base, targets = _evaluated_and_queued(c, colours, monkeypatch)
    data_dir = runner.worker_env().settings.data_dir
    (data_dir / "artifacts" / "finetune" / job_id / "summary.json").unlink()
    outcomes = drain()
    assert outcomes[-1].startswith("failed") and outcomes[0].startswith("retrying"), outcomes
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and "summary.json" in job["error"], job
    _assert_dropped(c, ftm, base, targets)


def test_a_grid_whose_points_all_fail_fails_without_a_model(
    service: tuple[TestClient, Path],
) -> None:
    c, colours = service
    dataset, model = upload_and_ingest(c, colours), add_tiny(c)["id"]
    job_id = _submit(c, model, dataset, {"lr": [0.001, 0.01]})
    assert runner.execute(job_id).startswith("waiting")
    for kid in c.get("/v1/jobs", params={"parent_id": job_id}).json()["items"]:
        assert c.post(f"/v1/jobs/{kid['id']}:cancel").json()["status"] == "cancelled"
    outcomes = drain()
    assert len(outcomes) == 1 and outcomes[0].startswith("failed"), outcomes
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and "every grid point failed" in job["error"], job
    models = c.get("/v1/finetuned-models", params={"limit": 200}).json()["items"]
    assert [m for m in models if m["job_id"] == job_id] == []


def test_a_fine_tune_cancelled_while_concluding_ends_cancelled_without_its_model(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel lands while the parent's concluding run reads its children (done here in
    that run's own transaction, as a concurrent request would commit it): the model goes at
    once, and the job ends `cancelled`, not failed for a missing model."""
    from app.jobs.children import cancel_tree
    from workers.tasks import finetune_eval

    c, colours = service
    job_id, ftm, base, targets = _evaluated_and_queued(c, colours, monkeypatch)
    read = finetune_eval.children_of

    def cancelled_meanwhile(session: Any, parent_id: str) -> Any:
        cancel_tree(session=session, job_id=parent_id)
        session.flush()
        return read(session, parent_id)

    monkeypatch.setattr(finetune_eval, "children_of", cancelled_meanwhile)
    assert runner.execute(job_id) == "cancelled"
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["error"] is None, job
    _assert_dropped(c, ftm, base, targets)


def test_the_reaper_drops_an_evaluating_model_left_under_a_failed_job(
    service: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model an older version left `evaluating` under a job already failed is dropped by
    the reaper's next pass (its backstop); one under a job still going is kept."""
    from sqlalchemy import update

    from app.jobs.reaper import reap_once
    from app.models import Job

    c, colours = service
    job_id, ftm, base, targets = _evaluated_and_queued(c, colours, monkeypatch)
    env = runner.worker_env()
    reap_once(env.sessions, env.settings)
    assert c.get(f"/v1/finetuned-models/{ftm}").json()["status"] == "evaluating"
    with session_scope(env.sessions) as session:  # failed as an older version failed it
        session.execute(update(Job).where(Job.id == job_id).values(status="failed"))
    assert reap_once(env.sessions, env.settings) >= 1
    _assert_dropped(c, ftm, base, targets)
