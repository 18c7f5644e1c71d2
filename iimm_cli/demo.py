"""`iimm demo`: the main job on the embedded default, end to end through the REST API.

Starts the embedded service (`iimm serve`: SQLite, local artifacts, a database-polling
worker), generates a small synthetic dataset and uploads it, registers a tiny open_clip
model, runs an `embed` and a `score` job, prints the measures and the API URL, and shuts
the service down.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError, print_table

TINY = Path(__file__).resolve().parents[1] / "workers" / "ml" / "configs" / "tiny-clip.json"


def register(sub: Any) -> None:
    """Add the `demo` subcommand."""
    p = sub.add_parser("demo", help="start the embedded service and run embed + score on it")
    p.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="keep the service's data here (default: a temp dir)",
    )
    p.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    p.add_argument("--task", default="shapes", help="synthetic task (shapes, colours, ...)")
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for CIs")
    p.add_argument("--keep-serving", action="store_true", help="leave the service running")
    p.set_defaults(handler=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """`iimm serve` in a child process; returns once the API answers."""
    import httpx

    env = {"IIMM_LOG_LEVEL": "WARNING", **os.environ, "IIMM_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "iimm_cli", "serve", "--port", str(port)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CliError(f"the service exited with code {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    raise CliError("the service did not start within 120 s")


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the service (it stops its worker) and wait."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _job(client: Any, body: dict[str, Any], label: str) -> dict[str, Any]:
    job = client.request("POST", "/v1/jobs", json=body)
    print(f"  {label}: job {job['id']} submitted", flush=True)
    job = client.wait_job(job["id"], timeout=900)
    if job["status"] != "succeeded":
        raise CliError(f"{label} job {job['status']}: {job.get('error')}")
    return job


def pipeline(
    client: Any, work: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generate + upload a dataset, register the tiny model, embed, score; returns scores."""
    from iimm_cli.datasets import upload
    from workers.ml.synth import generate_task

    folder = generate_task(args.task, work / args.task, per_class=args.per_class, seed=0)
    ds = upload(client, folder, f"{args.task}-{int(time.time())}")
    print(f"  dataset {ds['id']}: {len(ds['class_names'])} classes, splits {ds['splits']}")
    body = {"name": f"tiny-clip-{int(time.time())}", "arch": str(TINY), "pretrained": "random"}
    model = client.request("POST", "/v1/models", json=body)
    print(f"  model {model['id']}: {model['spec']}")
    ids = {"model_id": model["id"], "dataset_id": ds["id"], "split": "test"}
    embed = _job(client, {"type": "embed", **ids}, "embed")
    _job(client, {"type": "score", **ids, "bootstrap": args.bootstrap}, "score")
    params = {"model_id": model["id"], "dataset_id": ds["id"], "split": "test"}
    return embed, client.request("GET", "/v1/scores", params=params)["items"]


def run(args: argparse.Namespace) -> int:
    """Start the service, run the pipeline over HTTP, print the scores, shut down."""
    from iimm_cli.client import ApiClient
    from iimm_cli.scores import fmt, score_rows

    work = Path(tempfile.mkdtemp(prefix="iimm-demo-"))
    kept_dir = getattr(args, "data_dir", None)
    data_dir = Path(kept_dir).resolve() if kept_dir else work / "var"
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"Starting the embedded IIMM service (data in {data_dir}) ...", flush=True)
    proc = start_service(data_dir, port)
    try:
        client = ApiClient(url, (data_dir / "admin.key").read_text().strip())
        embed, scores = pipeline(client, work, args)
        zs = embed["result"]["zero_shot"]
        n_test = embed["result"]["n"]
        print(f"\nZero-shot accuracy (top-1) on {n_test} test images: {fmt(zs.get('top1'))}")
        print_table(score_rows(scores), ("measure", "value [95% CI]"))
        print(f"\nAPI: {url}  (OpenAPI docs: {url}/docs)")
        if args.keep_serving:
            print("Serving until Ctrl-C ...")
            proc.wait()
    finally:
        stop_service(proc)
        shutil.rmtree(work, ignore_errors=True)
    kept = f"data kept in {data_dir}" if kept_dir else "temporary data removed"
    print(f"Service stopped ({kept}). Run it yourself with: iimm serve --data-dir ./var")
    return 0
