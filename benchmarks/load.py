"""Bounded loopback load: N concurrent job submissions and M reads; p50/p99 latency.

    python benchmarks/load.py                      # starts an embedded `iimm serve` itself
    python benchmarks/load.py --url URL --api-key KEY   # against a running service

Submissions alternate `embed` (of an already-embedded dataset: the reuse path) and `score`
jobs, each with its own Idempotency-Key; reads mix `GET /v1/jobs/{id}` and job lists.
The run passes only if every submitted job reaches a final state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "workers" / "ml" / "configs" / "tiny-clip.json")
RETRIES = [0]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_embedded(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """`iimm serve` on a free port; returns (process, url, admin key)."""
    port = _port()
    env = {**os.environ, "IIMM_DATA_DIR": str(data_dir), "IIMM_WORKER_POLL_S": "0.05"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "iimm_cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return proc, url, (data_dir / "admin.key").read_text().strip()
        except (httpx.HTTPError, FileNotFoundError):
            time.sleep(0.2)
    raise RuntimeError("the embedded service did not start")


FINAL = ("succeeded", "failed", "cancelled")


def setup(client: httpx.Client, work: Path) -> dict[str, str]:
    """A dataset and a tiny model, embedded once (so submissions exercise the job path)."""
    from workers.ml.synth import generate_task

    folder = generate_task("shapes", work / "shapes", per_class=8, seed=0)
    archive = work / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in folder.rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    name = f"load-{random.randrange(1 << 30)}"
    with archive.open("rb") as fh:
        ds = client.post("/v1/datasets:upload", data={"name": name}, files={"file": fh}).json()
    # 202: the dataset is validated by its ingest job (an embed job would wait for it anyway)
    while client.get(f"/v1/jobs/{ds['job_id']}").json()["status"] not in FINAL:
        time.sleep(0.2)
    model = client.post(
        "/v1/models", json={"name": name, "arch": TINY, "pretrained": "random"}
    ).json()
    ids = {"model_id": model["id"], "dataset_id": ds["id"]}
    job = client.post("/v1/jobs", json={"type": "embed", **ids}).json()
    while client.get(f"/v1/jobs/{job['id']}").json()["status"] not in FINAL:
        time.sleep(0.2)
    return ids


async def _timed(
    client: httpx.AsyncClient, method: str, url: str, **kw: Any
) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    for attempt in range(3):
        try:
            resp = await client.request(method, url, **kw)
            break
        except httpx.TransportError:  # keep-alive connection closed by the server: safe to retry
            RETRIES[0] += 1
            if attempt == 2:
                raise
    return time.perf_counter() - start, resp


async def submit_all(
    client: httpx.AsyncClient, ids: dict[str, str], n: int
) -> tuple[list[float], list[str]]:
    """N concurrent submissions; returns latencies and job ids."""
    bodies = [{"type": "embed" if i % 2 else "score", **ids} for i in range(n)]
    stamp = time.time()
    results = await asyncio.gather(*(
        _timed(client, "POST", "/v1/jobs", json=b, headers={"Idempotency-Key": f"load-{i}-{stamp}"})
        for i, b in enumerate(bodies)
    ))  # fmt: skip
    bad = [r.status_code for _, r in results if r.status_code != 202]
    if bad:
        raise RuntimeError(f"{len(bad)} submissions failed: {bad[:5]}")
    return [t for t, _ in results], [r.json()["id"] for _, r in results]


async def read_all(
    client: httpx.AsyncClient, job_ids: list[str], n: int, concurrency: int
) -> list[float]:
    """M reads with bounded concurrency."""
    sem = asyncio.Semaphore(concurrency)
    rng = random.Random(0)
    urls = [f"/v1/jobs/{rng.choice(job_ids)}" if i % 4 else "/v1/jobs?limit=50" for i in range(n)]

    async def one(url: str) -> float:
        async with sem:
            took, resp = await _timed(client, "GET", url)
            resp.raise_for_status()
            return took

    return list(await asyncio.gather(*(one(u) for u in urls)))


def wait_final(client: httpx.Client, job_ids: list[str], timeout: float) -> dict[str, int]:
    """Poll until every job is final; returns counts by status."""
    deadline, pending = time.monotonic() + timeout, set(job_ids)
    counts: dict[str, int] = {}
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            status = client.get(f"/v1/jobs/{job_id}").json()["status"]
            if status in ("succeeded", "failed", "cancelled"):
                pending.discard(job_id)
                counts[status] = counts.get(status, 0) + 1
        time.sleep(0.5)
    counts["not final"] = len(pending)
    return counts


def pct(values: list[float], q: float) -> float:
    """The q-th percentile in milliseconds."""
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def run(url: str, key: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark against `url`."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        ids = setup(client, work)

        async def phases() -> tuple[list[float], list[str], list[float], float]:
            limits = httpx.Limits(max_connections=args.submissions)
            async with httpx.AsyncClient(
                base_url=url, headers=headers, timeout=120, limits=limits
            ) as ac:
                t0 = time.perf_counter()
                sub, job_ids = await submit_all(ac, ids, args.submissions)
                reads = await read_all(ac, job_ids, args.reads, args.read_concurrency)
                return sub, job_ids, reads, time.perf_counter() - t0

        sub, job_ids, reads, wall = asyncio.run(phases())
        t1 = time.perf_counter()
        counts = wait_final(client, job_ids, args.timeout)
        drain = time.perf_counter() - t1
    return {
        "submissions": len(sub), "submit_p50_ms": pct(sub, 50), "submit_p99_ms": pct(sub, 99),
        "reads": len(reads), "read_p50_ms": pct(reads, 50), "read_p99_ms": pct(reads, 99),
        "http_phase_s": wall, "drain_s": drain, "final_states": counts,
        "connection_retries": RETRIES[0],
    }  # fmt: skip


def main() -> int:
    """Parse arguments, start the service if needed, run, print the table."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--url")
    p.add_argument("--api-key")
    p.add_argument("--submissions", type=int, default=200)
    p.add_argument("--reads", type=int, default=1000)
    p.add_argument("--read-concurrency", type=int, default=50)
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iimm-load-"))
    proc = None
    try:
        url, key = args.url, args.api_key
        if not url:
            proc, url, key = start_embedded(work / "var")
        result = run(url, key, work, args)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    for k in ("submit", "read"):
        print(f"{k:>7}: p50 {result[f'{k}_p50_ms']:.1f} ms  p99 {result[f'{k}_p99_ms']:.1f} ms")
    return 0 if result["final_states"]["not final"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
