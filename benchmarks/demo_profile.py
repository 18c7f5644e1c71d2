"""CPU seconds per phase of `iimm demo` (the paper's loop on the reference model), per job.

Starts the embedded service (`iimm serve`, its worker a child process) and runs the demo's
loop (`iimm_cli.demo_loop`) phase by phase, one job at a time, reading the CPU time (user +
system) of the service's process tree (API, worker and the worker's decoding processes) and
of this process (suite generation, zipping) around each phase and each job. CPU seconds,
not wall clock: on a busy machine they still say what an idle one would need.

    .venv/bin/python benchmarks/demo_profile.py [--tasks colours,letters] [--finetune 2]
        [--per-class 60] [--max-steps 200] [--bootstrap 100] [--out profile.json]

`--tasks` limits the suite (default: all 13 of the demo); `--finetune N` fine-tunes only
the first N of them (each fine-tune evaluates on every uploaded task, as in the demo).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iimm_cli._common import CliError  # noqa: E402
from iimm_cli.client import ApiClient  # noqa: E402
from iimm_cli.demo import _free_port, start_service, stop_service  # noqa: E402
from iimm_cli.demo_loop import HELD_OUT_TASKS, TRAIN_TASKS, LoopConfig  # noqa: E402


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid` and every live descendant, with what their
    waited-for children used."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class Meter:
    """CPU seconds of the service tree and of this process since the last reading."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.last = (tree_cpu(pid), time.process_time(), time.monotonic())

    def lap(self) -> dict[str, float]:
        now = (tree_cpu(self.pid), time.process_time(), time.monotonic())
        service, client, wall = (b - a for a, b in zip(self.last, now, strict=True))
        self.last = now
        return {"service_cpu_s": round(service, 2), "client_cpu_s": round(client, 2),
                "wall_s": round(wall, 2)}  # fmt: skip


def one_job(client: ApiClient, meter: Meter, body: dict[str, Any]) -> dict[str, Any]:
    """Submit a job, wait for it, return its CPU use and what the job row says."""
    meter.lap()
    job = client.request("POST", "/v1/jobs", json=body)
    job = client.wait_job(job["id"], timeout=3600)
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job['id']} {job['status']}: {job.get('error')}")
    out = {**meter.lap(), "run_s": job.get("run_s")}
    result = job.get("result") or {}
    if "history" in result:
        out["epochs"] = len(result["history"])
        out["steps"] = result["history"][-1]["step"] if result["history"] else 0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join([*TRAIN_TASKS, *HELD_OUT_TASKS]))
    ap.add_argument("--finetune", type=int, default=None, help="fine-tune the first N tasks")
    ap.add_argument("--per-class", type=int, default=LoopConfig.per_class)
    ap.add_argument("--max-steps", type=int, default=LoopConfig.max_steps)
    ap.add_argument("--bootstrap", type=int, default=LoopConfig.bootstrap)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    tuned = tasks[: args.finetune] if args.finetune is not None else tasks
    cfg = LoopConfig(per_class=args.per_class, max_steps=args.max_steps,
                     bootstrap=args.bootstrap, train_tasks=tasks, held_out_tasks=())  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="iimm-demo-profile-"))
    report: dict[str, Any] = {"config": vars(args), "phases": {}, "jobs": []}
    t0, c0 = time.monotonic(), time.process_time()
    port = _free_port()
    proc = start_service(work / "var", port)
    meter = Meter(proc.pid)
    time.sleep(5)  # the worker process imports torch after the API answers
    report["phases"]["start"] = {**meter.lap(), "client_cpu_s": round(time.process_time() - c0, 2),
                                 "wall_s": round(time.monotonic() - t0, 2)}  # fmt: skip
    try:
        from iimm_cli.datasets import upload
        from workers.ml.reference.suite import generate_suite

        client = ApiClient(
            f"http://127.0.0.1:{port}", (work / "var" / "admin.key").read_text().strip()
        )
        model = client.request("POST", "/v1/models", json={"name": "ref", "preset": "reference"})
        folders = generate_suite(work / "suite", per_class=cfg.per_class, seed=0, tasks=tasks)
        report["phases"]["generate"] = meter.lap()
        ids = {t: upload(client, folders[t], t)["id"] for t in tasks}
        report["phases"]["upload"] = meter.lap()
        for phase, bodies in (
            (
                "assess",
                [
                    {
                        "type": "assess",
                        "model_id": model["id"],
                        "dataset_id": ids[t],
                        "bootstrap": cfg.bootstrap,
                    }
                    for t in tasks
                ],
            ),
            (
                "finetune",
                [
                    {
                        "type": "finetune",
                        "model_id": model["id"],
                        "dataset_id": ids[t],
                        "method": "full",
                        "hyperparameters": cfg.hyperparameters(),
                    }
                    for t in tuned
                ],
            ),
        ):
            jobs = [{"phase": phase, "task": b["dataset_id"], **one_job(client, meter, b)}
                    for b in bodies]  # fmt: skip
            names = {v: k for k, v in ids.items()}
            for j in jobs:
                j["task"] = names[j["task"]]
            report["jobs"] += jobs
            report["phases"][phase] = {
                k: round(sum(j[k] for j in jobs), 2)
                for k in ("service_cpu_s", "client_cpu_s", "wall_s")
            }
            print(json.dumps({phase: report["phases"][phase]}), flush=True)
        meter.lap()
        q = {"base_model_id": model["id"], "method": "full"}
        client.request("GET", "/v1/matrices", params=q)
        try:  # needs 3 unflagged fine-tuned tasks
            for feature in ("iimm", "zero_shot_accuracy"):
                for target in ("gain", "ood_change"):
                    client.request("POST", "/v1/predictors", json={**q, "feature": feature,
                                   "target": target, "piecewise": "never"})  # fmt: skip
            client.request("GET", "/v1/comparisons", params=q)
        except CliError as exc:
            print(f"predictors: {exc}", flush=True)
        report["phases"]["predictors"] = meter.lap()
    finally:
        stop_service(proc)
    report["total_wall_s"] = round(time.monotonic() - t0, 1)
    report["load_average"] = list(psutil.getloadavg())
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
