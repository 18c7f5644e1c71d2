"""Uploads are validated by an `ingest` job on a worker, never in the API process, on the
embedded and the production stack: the 202 contract, jobs that wait for a dataset still
being validated, and reads that stay cheap while a large upload is decoded."""

from __future__ import annotations

import io
import statistics
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from PIL import Image

from tests.service.stack import (
    TINY,
    Stack,
    drop_database,
    embedded_stack,
    production_stack,
    wait_job,
    zip_dir,
)


@pytest.fixture(scope="module", params=["embedded", "production"])
def bare(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Stack]:
    """An API of each kind with no worker: each test starts (and stops) the ones it needs."""
    from tests.service.conftest import _postgres_up, _redis_up, redis_db

    data_dir = Path(tempfile.mkdtemp(prefix=f"ingest-{request.param}-", dir=workdir))
    db_url = None
    if request.param == "embedded":
        stack = embedded_stack(data_dir)
    else:
        if not (_redis_up() and _postgres_up()):
            pytest.skip("Postgres or Redis is not running")
        stack, db_url = production_stack(data_dir, f"redis://127.0.0.1:6379/{redis_db()}")
    try:
        yield stack
    finally:
        stack.stop()
        if db_url:
            drop_database(db_url)


def _upload(c: httpx.Client, name: str, archive: bytes) -> dict[str, Any]:
    resp = c.post(
        "/v1/datasets:upload", data={"name": name}, files={"file": ("d.zip", archive)},
        params={"allow_duplicate": "true"},
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


def _poll(c: httpx.Client, path: str, done: Any, timeout: float = 300.0) -> dict[str, Any]:
    """GET `path` until `done(body)` (or the timeout: the caller's assertion then says why)."""
    deadline = time.monotonic() + timeout
    while True:
        body = c.get(path).json()
        if done(body) or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.3)


def test_upload_answers_202_with_its_ingest_job(bare: Stack, shapes_zip: Path) -> None:
    with bare.client() as c:
        resp = c.post(
            "/v1/datasets:upload", data={"name": "shapes"},
            files={"file": ("shapes.zip", shapes_zip.read_bytes())},
        )  # fmt: skip
        assert resp.status_code == 202, resp.text
        accepted = resp.json()
        job_id = accepted["job_id"]
        assert accepted["status"] == "validating" and accepted["splits"] == {}
        assert resp.headers["location"] == f"/v1/jobs/{job_id}" == accepted["links"]["job"]
        job = c.get(f"/v1/jobs/{job_id}").json()
        # no worker yet: nothing was read, the upload waits in the artifact store
        assert job["type"] == "ingest" and job["status"] == "queued"
        assert job["params"] == {"type": "ingest", "dataset_id": accepted["id"],
                                 "allow_duplicate": False}  # fmt: skip
        assert job["links"]["dataset"] == f"/v1/datasets/{accepted['id']}"
        assert (bare.data_dir / "artifacts" / "uploads" / accepted["id"]).is_dir()
        bare.start_worker()
        try:
            job = wait_job(c, job_id)
            assert job["status"] == "succeeded", job
            ready = c.get(f"/v1/datasets/{accepted['id']}").json()
            assert ready["status"] == "ready" and ready["error"] is None
            assert ready["splits"]["test"] == 12 and len(ready["class_names"]) == 6
            assert job["result"]["splits"] == ready["splits"]
            assert not (bare.data_dir / "artifacts" / "uploads" / accepted["id"]).exists()
        finally:
            bare.kill_workers()


def _bad_archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/0.png", b"not a png")
        zf.writestr("b/0.png", b"not a png either")
    return buf.getvalue()


def test_jobs_wait_for_a_dataset_being_validated(bare: Stack, workdir: Path) -> None:
    """Jobs submitted on `validating` datasets wait (holding no worker) for the ingest job:
    they run once it succeeded, and fail naming the problem once it failed."""
    from tests.service.stack import make_task

    task = zip_dir(make_task(workdir / "wait-task", per_class=4, seed=3), workdir / "wait.zip")
    with bare.client() as c:
        good = _upload(c, "wait-good", task.read_bytes())
        bad = _upload(c, "wait-bad", _bad_archive())
        model = c.post("/v1/models", json={"name": "wait", "arch": TINY, "pretrained": "random"})
        embed = {"type": "embed", "model_id": model.json()["id"]}
        jobs = [c.post("/v1/jobs", json={**embed, "dataset_id": d["id"]}) for d in (good, bad)]
        assert [j.status_code for j in jobs] == [202, 202], [j.text for j in jobs]
        ids = [j.json()["id"] for j in jobs]
        bare.start_worker(queues=("gpu",))  # takes the embed jobs; nobody ingests yet
        try:
            for job_id, dataset in zip(ids, (good, bad), strict=True):
                # claimed (running) for a moment before the worker parks it
                parked = _poll(
                    c, f"/v1/jobs/{job_id}", lambda j: j["status"] not in ("queued", "running")
                )
                assert parked["status"] == "waiting", parked
                assert parked["waits_for"] == dataset["job_id"]
                assert "waiting for dataset" in parked["progress"]["stage"]
                ingest = c.get(f"/v1/jobs/{dataset['job_id']}").json()
                assert ingest["status"] == "queued"
            bare.start_worker(queues=("cpu",))
            done = [wait_job(c, job_id) for job_id in ids]
        finally:
            bare.kill_workers()
        assert done[0]["status"] == "succeeded", done[0]
        assert (
            done[0]["result"]["n"] == c.get(f"/v1/datasets/{good['id']}").json()["splits"]["test"]
        )
        failed = c.get(f"/v1/datasets/{bad['id']}").json()
        assert failed["status"] == "failed" and failed["error"]["status"] == 422
        assert done[1]["status"] == "failed", done[1]
        assert "'wait-bad'" in done[1]["error"] and "failed validation" in done[1]["error"]
        assert failed["error"]["detail"] in done[1]["error"]  # the ingest job's problem
        # submitted after it failed: refused at once, with the same reason
        late = c.post("/v1/jobs", json={**embed, "dataset_id": bad["id"]})
        assert late.status_code == 409 and failed["error"]["detail"] in late.json()["detail"]


def test_the_same_content_ingested_at_once_is_ready_once(bare: Stack, workdir: Path) -> None:
    """Two uploads of the same content, ingested by two workers at the same time: one is
    `ready`, the other `failed` with the 409 naming it, whichever finished first (the
    database's unique index decides; `tests/workers/tasks/test_ingest_race.py` makes the
    interleaving that used to let both through on purpose)."""
    from tests.service.stack import make_task

    task = zip_dir(make_task(workdir / "twice-task", per_class=4, seed=11), workdir / "twice.zip")
    with bare.client() as c:
        sent = []
        for name in ("twice-a", "twice-b"):
            resp = c.post(
                "/v1/datasets:upload", data={"name": name},
                files={"file": ("d.zip", task.read_bytes())},
            )  # fmt: skip
            assert resp.status_code == 202, resp.text
            sent.append(resp.json())
        bare.start_worker(queues=("cpu",))
        bare.start_worker(queues=("cpu",))
        try:
            jobs = [wait_job(c, d["job_id"]) for d in sent]
        finally:
            bare.kill_workers()
        rows = [c.get(f"/v1/datasets/{d['id']}").json() for d in sent]
    assert sorted(r["status"] for r in rows) == ["failed", "ready"], rows
    (ready, job_ok), (failed, job_failed) = sorted(
        zip(rows, jobs, strict=True), key=lambda pair: pair[0]["status"] != "ready"
    )
    assert job_ok["status"] == "succeeded" and job_failed["status"] == "failed", jobs
    assert failed["error"]["status"] == 409, failed
    assert f"dataset {ready['name']!r} ({ready['id']})" in failed["error"]["detail"], failed
    assert "same content" in failed["error"]["detail"]
    assert failed["error"]["detail"] in job_failed["error"]


def _large_png(size: int, step: int) -> bytes:
    """A large, highly compressible image: small to upload, slow to decode."""
    import numpy as np

    y, x = np.mgrid[0:size, 0:size]
    plane = ((x // step + y // 7) % 256).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(np.stack([plane, plane, plane], -1)).save(buf, "PNG")
    return buf.getvalue()


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _read_batch(c: httpx.Client, api: psutil.Process, n: int = 20) -> tuple[float, list[float]]:
    """`n` reads of the dataset list: the API process's CPU seconds for them, and each
    read's latency (seconds)."""
    latencies = []
    before = _cpu(api)
    for _ in range(n):
        start = time.perf_counter()
        assert c.get("/v1/datasets", params={"limit": 50}).status_code == 200
        latencies.append(time.perf_counter() - start)
    return _cpu(api) - before, latencies


def _p99(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.99 * len(values)) - 1)]


def test_reads_stay_cheap_while_a_large_upload_is_decoded(bare: Stack, workdir: Path) -> None:
    """The API process does no decoding: its CPU time for the upload is a small part of
    what the worker spends decoding it, and a batch of reads costs it about as much CPU
    while the worker decodes as when idle (CPU time, not wall time: the machine may be
    busy with anything else). The wall-clock p99 of the reads is printed, not asserted."""
    images = [_large_png(2400, step) for step in (3, 5)]
    archive = workdir / "large.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(120):
            zf.writestr(f"{'ab'[i % 2]}/{i}.png", images[i % 2])
    bare.start_worker()
    try:
        assert bare.api is not None
        api, worker = psutil.Process(bare.api.pid), psutil.Process(bare.workers[0].pid)
        with bare.client() as c:
            idle = [_read_batch(c, api) for _ in range(5)]
            api_before, worker_before = _cpu(api), _cpu(worker)
            accepted = _upload(c, "large", archive.read_bytes())
            api_upload = _cpu(api) - api_before
            assert accepted["status"] == "validating"
            busy: list[tuple[float, list[float]]] = []
            job_path = f"/v1/jobs/{accepted['job_id']}"
            _poll(c, job_path, lambda j: j["status"] != "queued")
            while len(busy) < 30 and c.get(job_path).json()["status"] == "running":
                batch = _read_batch(c, api)
                if c.get(job_path).json()["status"] == "running":  # the whole batch was busy
                    busy.append(batch)
            job = wait_job(c, accepted["job_id"], timeout=600)
            worker_ingest = _cpu(worker) - worker_before
            idle += [_read_batch(c, api) for _ in range(5)]
        assert job["status"] == "succeeded", job
    finally:
        bare.kill_workers()
    assert len(busy) >= 3, f"only {len(busy)} batches of reads while the job ran"
    # The API only stored the bytes; the worker decoded 120 images of 5.8 megapixels.
    assert api_upload < worker_ingest / 4, (api_upload, worker_ingest)
    idle_cpu = statistics.median(cpu for cpu, _ in idle)
    busy_cpu = statistics.median(cpu for cpu, _ in busy)
    idle_p99 = _p99([t for _, ts in idle for t in ts])
    busy_p99 = _p99([t for _, ts in busy for t in ts])
    print(
        f"\n[{bare.kind}] API CPU per 20 reads: idle {idle_cpu * 1000:.0f} ms, during ingest"
        f" {busy_cpu * 1000:.0f} ms ({len(busy)} batches); read p99 idle {idle_p99 * 1000:.1f}"
        f" ms, during ingest {busy_p99 * 1000:.1f} ms; upload: API {api_upload:.2f} s CPU,"
        f" worker {worker_ingest:.2f} s CPU"
    )
    # 3x, plus two clock ticks of /proc's CPU accounting: decoding in the API would add the
    # decoder's CPU to every batch.
    assert busy_cpu <= 3 * idle_cpu + 0.02, (busy_cpu, idle_cpu)
