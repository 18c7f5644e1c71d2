"""A fine-tuning grid on 1 and 2 Celery workers: wall time, and the fan-out overhead per child.

    python benchmarks/scale.py                 # 4 points, tiny model, CPU, one thread a worker
    python benchmarks/scale.py --points 4 --epochs 3 --per-class 10

For each worker count it starts the production stack (Postgres, Redis, the API, N workers
with `--pool=solo` and OMP_NUM_THREADS=1), uploads a generated task, warms every worker with
empty jobs (`evaluate` of the base model on no dataset: claim, load the cached model, finish),
then times a `finetune` job whose grid has `--points` learning rates, from submission until
it is final. The fan-out overhead of a child is its `started_at − created_at` (the parent
created it; a worker claimed it) for the children that found a free worker, against the
same figure of an empty job submitted over HTTP. Needs Postgres and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service.stack import (  # noqa: E402
    Stack,
    drop_database,
    make_task,
    production_stack,
    wait_job,
    zip_dir,
)
from tests.service.test_api import add_tiny, upload  # noqa: E402


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _lag(job: dict[str, Any]) -> float:
    """Seconds from the job's creation to its (last) start."""
    return (_t(job["started_at"]) - _t(job["created_at"])).total_seconds()


def _empty_jobs(c: httpx.Client, model_id: str, n: int) -> list[dict[str, Any]]:
    """`n` empty jobs, one after another (each submitted when the previous is final)."""
    done = []
    for _ in range(n):
        job = c.post("/v1/jobs", json={"type": "evaluate", "model_id": model_id, "dataset_ids": []})
        done.append(wait_job(c, job.json()["id"], timeout=300))
        assert done[-1]["status"] == "succeeded", done[-1]
    return done


def run(workers: int, archive: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One stack with `workers` workers: empty-job lag and the grid's wall time."""
    data_dir = Path(tempfile.mkdtemp(prefix="iimm-scale-"))
    stack, db_url = production_stack(data_dir, f"redis://127.0.0.1:6379/{args.redis_db}")
    try:
        for _ in range(workers):
            stack.start_worker()
        stack.wait_workers_ready(workers)
        return _measure(stack, workers, archive, args)
    finally:
        stack.stop()
        drop_database(db_url)
        shutil.rmtree(data_dir, ignore_errors=True)


def _measure(stack: Stack, workers: int, archive: Path, args: argparse.Namespace) -> dict:
    with stack.client(stack.new_key(f"scale-{uuid.uuid4().hex[:6]}")) as c:
        resp = upload(c, archive)
        assert resp.status_code == 201, resp.text
        dataset, model = resp.json()["id"], add_tiny(c)["id"]
        _empty_jobs(c, model, 4 * workers)  # warm: imports, model cache, connections
        empty = _empty_jobs(c, model, args.empty)
        lrs = [0.001 * 2**i for i in range(args.points)]
        body = {"type": "finetune", "model_id": model, "dataset_id": dataset, "evaluate_on": [],
                "hyperparameters": {"epochs": args.epochs, "batch_size": 8, "seed": 0,
                                    "grid": {"lr": lrs}}}  # fmt: skip
        start = time.perf_counter()
        job = c.post("/v1/jobs", json=body).json()
        job = wait_job(c, job["id"], timeout=3600)
        wall = time.perf_counter() - start
        assert job["status"] == "succeeded", job
        kids = c.get("/v1/jobs", params={"parent_id": job["id"], "limit": 200}).json()["items"]
    first = sorted(kids, key=lambda k: k["started_at"])[:workers]  # found a free worker
    return {
        "workers": workers,
        "grid_wall_s": wall,
        "child_run_s": statistics.median(k["run_s"] for k in kids),
        "child_lag_s": statistics.median(_lag(k) for k in first),
        "empty_lag_s": statistics.median(_lag(j) for j in empty),
        "empty_run_s": statistics.median(j["run_s"] for j in empty),
        "workers_used": len({k["worker"] for k in kids}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--empty", type=int, default=5, help="empty jobs timed per stack")
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iimm-scale-data-"))
    try:
        task = make_task(work / "colours", task="colours", per_class=args.per_class)
        archive = zip_dir(task, work / "colours.zip")
        rows = [run(n, archive, args) for n in (1, 2)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(rows, indent=1))
    one, two = rows
    print("\n| workers | grid wall | ratio to 1 | child run (median) | workers used |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['workers']} | {r['grid_wall_s']:.1f} s | "
              f"{r['grid_wall_s'] / one['grid_wall_s']:.2f} | {r['child_run_s']:.1f} s | "
              f"{r['workers_used']} |")  # fmt: skip
    print(f"\nfan-out lag per child (creation → start, free worker): {two['child_lag_s']:.3f} s;"
          f" empty job submission → start {two['empty_lag_s']:.3f} s,"
          f" empty job run {two['empty_run_s']:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
