"""The API against a bare FastAPI + SQLAlchemy app doing the same work, side by side (wrk).

    python benchmarks/api.py                         # both stacks, 3 rounds of 8 s runs
    python benchmarks/api.py --stack embedded --duration 5 --rounds 2

Needs `wrk` (Debian: `apt-get install wrk`). Each stack starts two uvicorn processes on
loopback with the same options: the service (`app.main:create_app`, no job worker, so
submitted jobs stay queued) and the baseline below, each on its own fresh database. Rounds
alternate service and baseline for every scenario, so both see the same machine load;
ratios are taken within a round, then the median over rounds is reported.

Scenarios (10 connections, one wrk thread):

- `healthz`: `GET /healthz` (no database);
- `read`: `GET /v1/jobs/{id}` with `Authorization: Bearer <key>` (key looked up by SHA-256,
  one row read by primary key);
- `submit`: `POST /v1/jobs` (an `embed` job); the baseline inserts the job and an outbox row
  in one transaction, the service does all it does (ownership checks of the model and the
  dataset, the outbox in production mode).

Stacks: `embedded` (SQLite WAL files) and `production` (Postgres at 127.0.0.1:5432, the
service with its Redis broker at 127.0.0.1:6379, under a unique key prefix removed after).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
SCENARIOS = ("healthz", "read", "submit")


# --- the service: a fresh database with a key, a model, a dataset and one job ---------------


def seed_service(env: dict[str, str]) -> dict[str, str]:
    """Migrate, create the key, and one model, dataset and job; returns their ids."""
    from app.config import Settings
    from app.db import make_engine, make_sessionmaker, new_id, session_scope
    from app.main import prepare_database
    from app.models import Dataset, Job, PretrainedModel, Project

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    prepare_database(settings)
    engine = make_engine(settings.db_url)
    ids = {"model_id": new_id("mdl"), "dataset_id": new_id("dst"), "job_id": new_id("job")}
    from sqlalchemy import select

    with session_scope(make_sessionmaker(engine)) as session:
        project = session.scalar(select(Project.id))
        session.add(PretrainedModel(id=ids["model_id"], project_id=project, name="bench",
                              arch="ViT-B-32", pretrained="random"))  # fmt: skip
        session.add(Dataset(id=ids["dataset_id"], project_id=project, name="bench",
                            format="folder", source="uri", uri="file:///nonexistent",
                            fingerprint="0" * 64, class_names=["a", "b"],
                            splits={"test": 2}))  # fmt: skip
        session.add(Job(id=ids["job_id"], project_id=project, type="embed", queue="gpu",
                        params={"model_id": ids["model_id"], "dataset_id": ids["dataset_id"],
                                "split": "test"}))  # fmt: skip
    engine.dispose()
    return ids


# --- processes, databases, wrk ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One uvicorn process on loopback."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]


def start(name: str, target: list[str], env: dict[str, str], log: Path) -> Server:
    """uvicorn `target` (factory) on a free loopback port, with the same options for all."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", *target, "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
        try:
            httpx.get(f"{url}/healthz", timeout=2)
            return Server(name, url, proc)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"{name} did not answer in 120 s")


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh Postgres database, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"iimm_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def drop_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * UNITS[unit]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, scenario: str, key: str, body: str, seconds: int, conns: int, work: Path,
        pid: int | None = None) -> dict[str, float]:  # fmt: skip
    """One wrk run; requests/s, p50 and p99 latency (ms), and with `pid` the server's CPU
    milliseconds per request. Raises on any non-2xx answer."""
    script = work / f"{scenario}.lua"
    lines = [f'wrk.headers["Authorization"] = "Bearer {key}"']
    if scenario == "submit":
        lines += ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"',
                  f"wrk.body = [[{body}]]"]  # fmt: skip
    script.write_text("\n".join(lines) + "\n")
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "30s",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(pid) - cpu0 if pid else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise RuntimeError(f"wrk saw failures against {url}:\n{out}")
    pct = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)\s*$", out, re.M))
    if set(pct) != {"50", "99"}:
        raise RuntimeError(f"no latency percentiles in wrk's output:\n{out}")
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(pct["50"]),
        "p99_ms": _ms(pct["99"]),
        "cpu_ms": 1000.0 * cpu / max(done, 1),
    }


# --- one stack -------------------------------------------------------------------------------


def run_stack(stack: str, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Start both servers of `stack`, run the alternating rounds, stop them."""
    key = "bench-" + secrets.token_hex(16)
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IIMM_", "BENCH_"))}
    base.update(BENCH_KEY=key, PYTHONPATH=f"{ROOT / 'benchmarks'}{os.pathsep}{ROOT}")
    with contextlib_both(stack) as (service_db, baseline_db):
        data = work / stack
        data.mkdir()
        service_env = {**base, "IIMM_DATA_DIR": str(data), "IIMM_BOOTSTRAP_API_KEY": key}
        if stack == "production":
            service_env.update(
                IIMM_MODE="production", IIMM_DATABASE_URL=service_db, IIMM_BROKER_URL=REDIS,
                IIMM_BROKER_KEY_PREFIX=prefix, IIMM_STORAGE_URL=str(data / "artifacts"),
            )  # fmt: skip
        ids = seed_service(service_env)
        body = json.dumps({"type": "embed", "model_id": ids["model_id"],
                           "dataset_id": ids["dataset_id"]})  # fmt: skip
        servers = []
        try:
            servers.append(start("service", ["app.main:create_app"], service_env,
                                 work / f"{stack}-service.log"))  # fmt: skip
            baseline_env = {**base, "BENCH_BASELINE_DB": baseline_db or f"sqlite:///{data}/base.db"}
            servers.append(start("baseline", ["api_baseline:make_baseline"], baseline_env,
                                 work / f"{stack}-baseline.log"))  # fmt: skip
            paths = {"healthz": "/healthz", "read": "/v1/jobs/{}", "submit": "/v1/jobs"}
            job_ids = {"service": ids["job_id"], "baseline": "job_bench"}
            for server in servers:  # warm-up: imports, caches, pools
                for scenario in SCENARIOS:
                    url = server.url + paths[scenario].format(job_ids[server.name])
                    wrk(url, scenario, key, body, 2, args.connections, work)
            rows = []
            for rnd in range(args.rounds):
                for scenario in SCENARIOS:
                    order = servers if rnd % 2 == 0 else servers[::-1]
                    for server in order:
                        url = server.url + paths[scenario].format(job_ids[server.name])
                        res = wrk(url, scenario, key, body, args.duration, args.connections,
                                  work, server.proc.pid)  # fmt: skip
                        rows.append({"stack": stack, "round": rnd, "scenario": scenario,
                                     "target": server.name, **res})  # fmt: skip
                        print(json.dumps(rows[-1]), flush=True)
            return rows
        finally:
            for server in servers:
                stop(server)
            if stack == "production":
                drop_redis_prefix(prefix)


@contextmanager
def contextlib_both(stack: str) -> Iterator[tuple[str | None, str | None]]:
    if stack == "embedded":
        yield None, None
        return
    with postgres_database() as service_db, postgres_database() as baseline_db:
        yield service_db, baseline_db


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per stack and scenario, medians over rounds and the within-round ratios."""
    out = ["| stack | scenario | service req/s | baseline req/s | ratio (median, range) |"
           " service p50 / p99 (ms) | baseline p50 / p99 (ms) | p99 ratio |"
           " CPU ms/request service / baseline |",
           "| --- | --- | ---: | ---: | --- | --- | --- | ---: | --- |"]  # fmt: skip
    keys = sorted({(r["stack"], r["scenario"]) for r in rows}, key=lambda k: (
        k[0], SCENARIOS.index(k[1])))  # fmt: skip
    for stack, scenario in keys:
        mine = [r for r in rows if r["stack"] == stack and r["scenario"] == scenario]
        by = {t: {r["round"]: r for r in mine if r["target"] == t} for t in ("service", "baseline")}
        rounds = sorted(by["service"])
        ratios = [by["service"][i]["rps"] / by["baseline"][i]["rps"] for i in rounds]
        p99r = [by["service"][i]["p99_ms"] / by["baseline"][i]["p99_ms"] for i in rounds]

        def med(t: str, k: str, by: dict[str, dict[int, dict[str, Any]]] = by) -> float:
            return statistics.median(r[k] for r in by[t].values())

        out.append(
            f"| {stack} | {scenario} | {med('service', 'rps'):.0f} | {med('baseline', 'rps'):.0f}"
            f" | **{statistics.median(ratios):.2f}** ({min(ratios):.2f}–{max(ratios):.2f})"
            f" | {med('service', 'p50_ms'):.1f} / {med('service', 'p99_ms'):.1f}"
            f" | {med('baseline', 'p50_ms'):.1f} / {med('baseline', 'p99_ms'):.1f}"
            f" | {statistics.median(p99r):.2f}"
            f" | {med('service', 'cpu_ms'):.2f} / {med('baseline', 'cpu_ms'):.2f} |"
        )
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--stack", choices=["embedded", "production", "both"], default="both")
    p.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=10, help="requests in flight")
    p.add_argument("--json", type=Path, help="also write every run here")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="iimm-api-bench-"))
    rows: list[dict[str, Any]] = []
    stacks = ["embedded", "production"] if args.stack == "both" else [args.stack]
    for stack in stacks:
        rows += run_stack(stack, args, work)  # on failure, the servers' logs stay in `work`
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    load = os.getloadavg()
    print(f"\nload average after the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
