"""`/metrics` job series from the database: queue depth, running jobs per worker (0 for a
worker seen within the window, on a running stack too once its job finished), and the
run-time and queue-wait histograms checked bucket by bucket against a direct count; the
artifact store's bytes and files by kind against a walk of the disk, on a running stack."""

from __future__ import annotations

import io
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.artifacts.usage import KINDS
from app.db import make_engine, make_sessionmaker, session_scope, utcnow
from app.health.metrics import BUCKETS, REGISTRY, refresh_job_gauges
from app.migrate import upgrade
from app.models import Job, Project
from tests.service.conftest import _postgres_up, _redis_up, redis_db
from tests.service.stack import drop_database, production_stack, wait_job
from tests.service.test_api import add_tiny, upload


def _samples() -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_job_series_equal_a_direct_count(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    factory = make_sessionmaker(make_engine(url))
    rng = random.Random(7)
    jobs = []
    for i in range(60):
        status = rng.choice(["queued", "running", "succeeded", "failed", "waiting"])
        ran = status in ("succeeded", "failed")
        jobs.append(dict(
            id=f"job_{i:03d}", project_id="prj_1", type=rng.choice(["embed", "score"]),
            queue=rng.choice(["gpu", "cpu"]), params={}, status=status,
            worker_id=rng.choice(["h1:10", "h2:20"]) if status != "queued" else None,
            run_s=rng.choice([0.05, 0.5, 2.0, 70.0, 5000.0]) if ran else None,
            queue_wait_s=rng.uniform(0, 20) if status != "queued" else None,
        ))  # fmt: skip
    jobs[0] |= {"status": "queued", "queue": "gpu"}
    with session_scope(factory) as session:
        session.add(Project(id="prj_1", name="p"))
        session.flush()
        session.add_all([Job(**j) for j in jobs])
    with session_scope(factory) as session:
        refresh_job_gauges(session, worker_window_s=900)
    got = _samples()

    depth = {s[0]["queue"]: s[1] for s in got["iimm_queue_depth"]}
    by_queue = {s[0]["queue"]: s[1] for s in got["iimm_queue_running"]}
    for queue in ("gpu", "cpu"):
        assert depth[queue] == sum(j["status"] == "queued" and j["queue"] == queue for j in jobs)
        assert by_queue[queue] == sum(
            j["status"] == "running" and j["queue"] == queue for j in jobs
        )
    running = {s[0]["worker"]: s[1] for s in got["iimm_jobs_running"]}
    for worker in ("h1:10", "h2:20"):
        assert running.get(worker, 0) == sum(
            j["status"] == "running" and j["worker_id"] == worker for j in jobs
        )
    for name, column, label in (
        ("iimm_job_run_seconds", "run_s", "type"),
        ("iimm_job_queue_wait_seconds", "queue_wait_s", "queue"),
    ):
        for value in {j[label] for j in jobs}:
            times = [j[column] for j in jobs if j[label] == value and j[column] is not None]
            buckets = {s[0]["le"]: s[1] for s in got[f"{name}_bucket"] if s[0][label] == value}
            for bound in BUCKETS:
                assert buckets[str(bound)] == sum(t <= bound for t in times), (name, bound)
            assert buckets["+Inf"] == len(times)
            (total,) = [s[1] for s in got[f"{name}_sum"] if s[0][label] == value]
            assert abs(total - sum(times)) < 1e-6


def test_a_worker_seen_within_the_window_reads_zero_and_one_idle_longer_has_no_sample(
    tmp_path: Path,
) -> None:
    """Workers are known from the jobs they started or finished: within the window an idle
    one has a 0 sample (an autoscaler reads 0, not "no data"); past it, none."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    factory = make_sessionmaker(make_engine(url))
    now, hour = utcnow(), timedelta(hours=1)
    jobs = [  # (worker, status, started_at, finished_at)
        ("busy:1", "running", now - 3 * hour, None),
        ("busy:1", "succeeded", now - 5 * hour, now - 4 * hour),
        ("idle:2", "succeeded", now - 2 * hour, now - timedelta(minutes=1)),
        ("fresh:3", "queued", now - timedelta(minutes=2), None),  # released: started lately
        ("gone:4", "failed", now - 3 * hour, now - 2 * hour),
    ]
    with session_scope(factory) as session:
        session.add(Project(id="prj_1", name="p"))
        session.flush()
        session.add_all([
            Job(id=f"job_{i}", project_id="prj_1", type="embed", queue="gpu", params={},
                status=status, worker_id=worker, started_at=started, finished_at=finished)
            for i, (worker, status, started, finished) in enumerate(jobs)
        ])  # fmt: skip
    for window, expected in (
        (900, {"busy:1": 1.0, "idle:2": 0.0, "fresh:3": 0.0}),
        (0, {"busy:1": 1.0}),
        (4 * 3600 + 60, {"busy:1": 1.0, "idle:2": 0.0, "fresh:3": 0.0, "gone:4": 0.0}),
    ):
        with session_scope(factory) as session:
            refresh_job_gauges(session, worker_window_s=window)
        got = {s[0]["worker"]: s[1] for s in _samples()["iimm_jobs_running"]}
        assert got == expected, window


def test_a_worker_whose_job_finished_reads_zero_on_a_stack(workdir: Path) -> None:
    """On the production stack: once the only job finished, the worker that ran it still
    has an `iimm_jobs_running` sample, at 0, and every queue's depth reads 0."""
    if not (_postgres_up() and _redis_up()):
        pytest.skip("Postgres or Redis is not running")
    data_dir = Path(tempfile.mkdtemp(prefix="idle-", dir=workdir))
    stack, db_url = production_stack(
        data_dir, f"redis://127.0.0.1:6379/{redis_db()}", IIMM_MEASURES_SYNC_MAX_VALUES="10"
    )
    try:
        worker = stack.worker_id(stack.start_worker())
        with stack.client() as c:
            buf = io.BytesIO()
            rng = np.random.default_rng(0)
            np.savez(buf, images=rng.normal(size=(30, 8)), texts=rng.normal(size=(3, 8)),
                     labels=np.arange(30) % 3)  # fmt: skip
            resp = c.post("/v1/measures:upload", files={"file": ("e.npz", buf.getvalue())})
            assert resp.status_code == 202, resp.text
            job = wait_job(c, resp.json()["id"])
            assert job["status"] == "succeeded" and job["worker"] == worker, job
            scraped = {
                f.name: {tuple(s.labels.values()): s.value for s in f.samples}
                for f in text_string_to_metric_families(c.get("/metrics").text)
            }
        assert scraped["iimm_jobs_running"] == {(worker,): 0.0}
        assert scraped["iimm_queue_depth"] == {("cpu",): 0.0, ("gpu",): 0.0}
        assert scraped["iimm_queue_running"] == {("cpu",): 0.0, ("gpu",): 0.0}
    finally:
        stack.stop()
        drop_database(db_url)


def _on_disk(root: Path) -> dict[str, tuple[int, int]]:
    """(bytes, files) under each top-level folder of `root`, by a walk of the disk."""
    out = dict.fromkeys(KINDS, (0, 0))
    for top in root.iterdir():
        files = [p for p in top.rglob("*") if p.is_file() and not p.is_symlink()]
        out[top.name] = (sum(p.stat().st_size for p in files), len(files))
    return out


def _scraped(text: str) -> dict[str, tuple[int, int]]:
    values: dict[str, dict[str, float]] = {"iimm_artifact_bytes": {}, "iimm_artifact_files": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in values:
                values[sample.name][sample.labels["kind"]] = sample.value
    size, count = values["iimm_artifact_bytes"], values["iimm_artifact_files"]
    return {k: (int(size[k]), int(count.get(k, -1))) for k in size}


def test_artifact_bytes_by_kind_equal_the_files_on_disk(workdir: Path, shapes_zip: Path) -> None:
    """After an upload, an embedding and a `measures:upload` job, `/metrics` reports, for
    every kind, the bytes and files a walk of the artifact folder finds."""
    if not (_postgres_up() and _redis_up()):
        pytest.skip("Postgres or Redis is not running")
    data_dir = Path(tempfile.mkdtemp(prefix="usage-", dir=workdir))
    stack, db_url = production_stack(
        data_dir, f"redis://127.0.0.1:6379/{redis_db()}",
        IIMM_ARTIFACT_USAGE_INTERVAL_S="0.5", IIMM_MEASURES_SYNC_MAX_VALUES="10",
    )  # fmt: skip
    try:
        stack.start_worker()
        with stack.client() as c:
            ds, model = upload(c, shapes_zip).json(), add_tiny(c)
            body = {"type": "embed", "model_id": model["id"], "dataset_id": ds["id"]}
            embed = c.post("/v1/jobs", json=body).json()
            rng = np.random.default_rng(0)
            buf = io.BytesIO()
            np.savez(buf, images=rng.normal(size=(30, 8)), texts=rng.normal(size=(3, 8)),
                     labels=np.arange(30) % 3)  # fmt: skip
            measures = c.post("/v1/measures:upload", files={"file": ("e.npz", buf.getvalue())})
            assert measures.status_code == 202, measures.text
            for job in (embed, measures.json()):
                assert wait_job(c, job["id"])["status"] == "succeeded"
            disk = _on_disk(Path(stack.env["IIMM_STORAGE_URL"]))
            assert all(disk[k][0] > 0 for k in ("datasets", "embeddings", "measures")), disk
            deadline = time.monotonic() + 300  # a failure bound, not a speed requirement
            scraped = _scraped(c.get("/metrics").text)
            while scraped != disk and time.monotonic() < deadline:
                time.sleep(0.5)
                scraped = _scraped(c.get("/metrics").text)
            assert scraped == disk
            assert "iimm_artifact_usage_timestamp_seconds" in c.get("/metrics").text
    finally:
        stack.stop()
        drop_database(db_url)
