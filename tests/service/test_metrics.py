"""`/metrics` job series from the database: queue depth, running jobs per worker, and the
run-time and queue-wait histograms checked bucket by bucket against a direct count."""

from __future__ import annotations

import random
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.db import make_engine, make_sessionmaker, session_scope
from app.health.metrics import BUCKETS, REGISTRY, refresh_job_gauges
from app.migrate import upgrade
from app.models import Job, Project


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
        refresh_job_gauges(session)
    got = _samples()

    depth = {s[0]["queue"]: s[1] for s in got["iimm_queue_depth"]}
    for queue in ("gpu", "cpu"):
        assert depth[queue] == sum(j["status"] == "queued" and j["queue"] == queue for j in jobs)
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
