"""A fine-tuning grid and a sharded embedding on 1 and 2 Celery workers: wall times, and the
fan-out overhead per child.

    python benchmarks/scale.py                 # 4 points, tiny model, CPU, one thread a worker
    python benchmarks/scale.py --points 4 --epochs 3 --per-class 10
    python benchmarks/scale.py --embed-per-class 400 --shards 4 --points 0   # embedding only

For each worker count it starts the production stack (Postgres, Redis, the API, N workers
with `--pool=solo` and OMP_NUM_THREADS=1), uploads a generated task, warms every worker with
empty jobs (`evaluate` of the base model on no dataset: claim, load the cached model, finish),
then times a `finetune` job whose grid has `--points` learning rates, from submission until
it is final. The fan-out overhead of a child is its `started_at − created_at` (the parent
created it; a worker claimed it) for the children that found a free worker, against the
same figure of an empty job submitted over HTTP.

The embedding (`--embed-per-class` images a class of the generated shapes task, train
split) is timed from submission until final three times: one job on 1 worker with sharding
off, then `--shards` `embed_shard` children on 1 and on 2 workers; the merge is the
parent's last run (its `finished_at − started_at`). Needs Postgres and Redis on 127.0.0.1.
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


def run(
    workers: int, archive: Path, args: argparse.Namespace, measure: Any = None, **env: str
) -> dict[str, Any]:
    """One stack with `workers` workers (and settings `env`): `measure(stack, workers,
    archive, args)`, by default the empty-job lag and the grid's wall time."""
    data_dir = Path(tempfile.mkdtemp(prefix="iimm-scale-"))
    stack, db_url = production_stack(data_dir, f"redis://127.0.0.1:6379/{args.redis_db}", **env)
    try:
        for _ in range(workers):
            stack.start_worker()
        stack.wait_workers_ready(workers)
        return (measure or _measure)(stack, workers, archive, args)
    finally:
        stack.stop()
        drop_database(db_url)
        shutil.rmtree(data_dir, ignore_errors=True)


def _measure_embed(stack: Stack, workers: int, archive: Path, args: argparse.Namespace) -> dict:
    """Wall time of an embed job of the archive's train split (after warm-up jobs)."""
    with stack.client(stack.new_key(f"scale-{uuid.uuid4().hex[:6]}")) as c:
        resp = upload(c, archive)
        assert resp.status_code == 201, resp.text
        dataset, model = resp.json()["id"], add_tiny(c)["id"]
        _empty_jobs(c, model, 4 * workers)
        body = {"type": "embed", "model_id": model, "dataset_id": dataset, "split": "train"}
        start = time.perf_counter()
        job = wait_job(c, c.post("/v1/jobs", json=body).json()["id"], timeout=3600)
        wall = time.perf_counter() - start
        assert job["status"] == "succeeded", job
        kids = c.get("/v1/jobs", params={"parent_id": job["id"], "limit": 200}).json()["items"]
    merge = (_t(job["finished_at"]) - _t(job["started_at"])).total_seconds() if kids else 0.0
    return {"workers": workers, "shards": len(kids), "images": job["result"]["n"],
            "embed_wall_s": wall, "merge_s": merge,
            "workers_used": len({k["worker"] for k in kids}) or 1}  # fmt: skip


def embed_rows(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """The embedding unsharded on 1 worker, then in `--shards` shards on 1 and 2 workers."""
    task = make_task(work / "shapes", task="shapes", per_class=args.embed_per_class)
    archive = zip_dir(task, work / "shapes.zip")
    n = len(list((task / "train").rglob("*.png")))
    size = -(-n // args.shards)
    sharded = {"IIMM_EMBED_SHARD_THRESHOLD": "1", "IIMM_EMBED_SHARD_SIZE": str(size)}
    return [
        run(1, archive, args, _measure_embed, IIMM_EMBED_SHARD_THRESHOLD="0"),
        run(1, archive, args, _measure_embed, **sharded),
        run(2, archive, args, _measure_embed, **sharded),
    ]


def print_embed(rows: list[dict[str, Any]]) -> None:
    print(json.dumps(rows, indent=1))
    base = rows[0]["embed_wall_s"]
    print(
        "\n| workers | shards | images | embed wall | ratio to unsharded | merge | workers used |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['workers']} | {r['shards'] or '-'} | {r['images']} | "
              f"{r['embed_wall_s']:.1f} s | {r['embed_wall_s'] / base:.2f} | "
              f"{r['merge_s']:.2f} s | {r['workers_used']} |")  # fmt: skip


def _measure(stack: Stack, workers: int, archive: Path, args: argparse.Namespace) -> dict:
    with stack.client(stack.new_key(f"scale-{uuid.uuid4().hex[:6]}")) as c:
        resp = upload(c, archive)  # waits for its ingest job
        assert resp.status_code == 200 and resp.json()["status"] == "ready", resp.text
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


def print_grid(rows: list[dict[str, Any]]) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=4, help="grid points (0: no grid)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--empty", type=int, default=5, help="empty jobs timed per stack")
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument(
        "--embed-per-class",
        type=int,
        default=0,
        help="images a class of the embedding benchmark (0: skip it)",
    )
    parser.add_argument("--shards", type=int, default=4, help="shards of the embedding")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iimm-scale-data-"))
    try:
        if args.embed_per_class:
            print_embed(embed_rows(args, work))
        if args.points:
            task = make_task(work / "colours", task="colours", per_class=args.per_class)
            archive = zip_dir(task, work / "colours.zip")
            print_grid([run(n, archive, args) for n in (1, 2)])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
