"""Faults: a worker killed mid-embed, the broker down at submission, Postgres restarted."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from app.models import Embedding
from tests.service.conftest import _postgres_up, _redis_up, redis_db
from tests.service.stack import (
    LEASE_S,
    Stack,
    drop_database,
    embedded_stack,
    free_port,
    make_task,
    production_stack,
    wait_job,
    zip_dir,
)
from tests.service.test_api import add_tiny, upload

needs_servers = pytest.mark.skipif(
    not (_postgres_up() and _redis_up()), reason="Postgres or Redis is not running"
)


@pytest.fixture(scope="module")
def big_zip(workdir: Path) -> Path:
    """A dataset whose train split takes seconds to embed with batches of 2."""
    root = workdir / "big"
    root.mkdir(exist_ok=True)
    return zip_dir(make_task(root / "data", per_class=64, seed=1), root / "big.zip")


@pytest.fixture(scope="module")
def other_zip(workdir: Path) -> Path:
    """Another, larger dataset (different content: nothing to reuse) for the cancellation."""
    root = workdir / "other"
    root.mkdir(exist_ok=True)
    return zip_dir(make_task(root / "data", per_class=400, seed=2), root / "o.zip")


def _wait_running(c: httpx.Client, job_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running":
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.2)
    raise TimeoutError("the embed job never made progress")


def _count_embeddings(db_url: str, dataset_id: str) -> int:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        n = conn.scalar(
            select(func.count()).select_from(Embedding).where(Embedding.dataset_id == dataset_id)
        )
    engine.dispose()
    return int(n or 0)


def _kill_and_recover(stack: Stack, db_url: str, archive: Path, other: Path) -> None:
    stack.start_worker()
    with stack.client() as c:
        ds, model = upload(c, archive).json(), add_tiny(c)
        body = {"type": "embed", "model_id": model["id"], "dataset_id": ds["id"], "split": "train"}
        job = c.post("/v1/jobs", json=body).json()
        _wait_running(c, job["id"])
        stack.kill_workers(signal.SIGKILL)
        stack.start_worker()
        final = wait_job(c, job["id"])
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2 and final["result"]["n"] == 6 * 48
    assert _count_embeddings(db_url, ds["id"]) == 1
    with stack.client() as c:
        other_id = upload(c, other).json()["id"]
    _cancel_running(stack, {**body, "dataset_id": other_id})


def _cancel_running(stack: Stack, body: dict) -> None:
    """A running job stops at its next heartbeat once cancelled; nothing is stored."""
    with stack.client() as c:
        job = c.post("/v1/jobs", json=body).json()
        _wait_running(c, job["id"])
        # Freeze the worker across one heartbeat interval (a heartbeat every lease/3) while
        # the cancel is requested: on SIGCONT the overdue heartbeat runs at once and sees it,
        # whatever the embedding's speed (the lease, renewed at most lease/3 before the
        # freeze, still has time to spare).
        stack.signal_workers(signal.SIGSTOP)
        try:
            assert c.post(f"/v1/jobs/{job['id']}:cancel").json()["cancel_requested"]
            time.sleep(LEASE_S / 3 + 0.1)
        finally:
            stack.signal_workers(signal.SIGCONT)
        final = wait_job(c, job["id"])
    assert final["status"] == "cancelled", final


@pytest.mark.parametrize("kind", ["embedded", "production"])
def test_kill_9_worker_mid_embed(kind: str, workdir: Path, big_zip: Path, other_zip: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix=f"kill-{kind}-", dir=workdir))
    extra = {"IIMM_EMBED_BATCH_SIZE": "2"}
    db_url = None
    if kind == "embedded":
        stack = embedded_stack(data_dir, **extra)
        url = f"sqlite:///{data_dir / 'iimm.db'}"
    else:
        if not (_postgres_up() and _redis_up()):
            pytest.skip("Postgres or Redis is not running")
        stack, db_url = production_stack(data_dir, f"redis://127.0.0.1:6379/{redis_db()}", **extra)
        url = db_url
    try:
        _kill_and_recover(stack, url, big_zip, other_zip)
    finally:
        stack.stop()
        if db_url:
            drop_database(db_url)


@pytest.fixture
def throwaway_redis(workdir: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A private redis-server on its own port (the shared one is never stopped)."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        ping = ["redis-cli", "-p", str(port), "ping"]
        deadline = time.monotonic() + 60
        while subprocess.run(ping, capture_output=True, text=True).stdout.strip() != "PONG":
            assert time.monotonic() < deadline, "the throwaway redis-server did not start"
            time.sleep(0.1)

    start()
    procs_start = procs
    try:
        yield port, procs_start
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)


@needs_servers
def test_broker_down_at_submission(
    workdir: Path, throwaway_redis: tuple[int, list[subprocess.Popen[bytes]]], shapes_zip: Path
) -> None:
    port, procs = throwaway_redis
    data_dir = Path(tempfile.mkdtemp(prefix="brokerdown-", dir=workdir))
    stack, db_url = production_stack(data_dir, f"redis://127.0.0.1:{port}/0")
    try:
        stack.start_worker()
        with stack.client() as c:
            ds, model = upload(c, shapes_zip).json(), add_tiny(c)
            procs[0].terminate()
            procs[0].wait(timeout=10)
            resp = c.post(
                "/v1/jobs", json={"type": "embed", "model_id": model["id"], "dataset_id": ds["id"]}
            )
            assert resp.status_code == 202, resp.text
            ready = httpx.get(f"{stack.url}/readyz", timeout=30)
            assert ready.status_code == 503 and ready.json()["checks"]["broker"] != "ok"
            time.sleep(2)
            assert c.get(f"/v1/jobs/{resp.json()['id']}").json()["status"] == "queued"
            procs.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(workdir),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
            final = wait_job(c, resp.json()["id"])
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 1
    finally:
        stack.stop()
        drop_database(db_url)


def _pg(cmd: list[str]) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True)


@pytest.fixture
def throwaway_postgres(workdir: Path) -> Iterator[tuple[int, Path]]:
    """A private Postgres cluster on its own port (the shared one is never restarted)."""
    if shutil.which("initdb") is None or shutil.which("runuser") is None:
        pytest.skip("initdb/runuser not available")
    root = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    shutil.chown(root, "postgres", "postgres")
    port = free_port()
    pgdata = root / "data"
    _pg(["initdb", "-D", str(pgdata), "-A", "trust", "-U", "postgres"])
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _pg(["pg_ctl", "-D", str(pgdata), "-o", opts, "-l", str(root / "log"), "-w", "start"])
    try:
        yield port, pgdata
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(pgdata), "-m",
                        "immediate", "stop"], capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@needs_servers
def test_postgres_restart(workdir: Path, throwaway_postgres: tuple[int, Path]) -> None:
    from tests.service.stack import Stack, migrate, production_env

    port, pgdata = throwaway_postgres
    data_dir = Path(tempfile.mkdtemp(prefix="pgrestart-", dir=workdir))
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    env = production_env(data_dir, db_url, f"redis://127.0.0.1:6379/{redis_db()}")
    migrate(env)
    stack = Stack("production", env, data_dir)
    stack.start_api()
    try:
        with stack.client() as c:
            assert c.get("/v1/jobs").status_code == 200
            _pg(["pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "stop"])
            ready = httpx.get(f"{stack.url}/readyz", timeout=30)
            assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
            down = c.get("/v1/jobs")
            assert down.status_code >= 500 and down.headers["content-type"].startswith(
                "application/problem+json"
            )
            opts = f"-p {port} -k {pgdata.parent} -c listen_addresses=127.0.0.1 -c fsync=off"
            _pg(
                [
                    "pg_ctl",
                    "-D",
                    str(pgdata),
                    "-o",
                    opts,
                    "-l",
                    str(pgdata.parent / "log"),
                    "-w",
                    "start",
                ]
            )
            assert httpx.get(f"{stack.url}/readyz", timeout=30).status_code == 200
            assert c.get("/v1/jobs").status_code == 200
    finally:
        stack.stop()
