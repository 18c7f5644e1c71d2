"""Running the service for tests: an API process and worker processes, embedded or production."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "workers" / "ml" / "configs" / "tiny-clip.json")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 300.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait until `url` answers (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def create_database(template: str | None = None) -> str:
    """A new uniquely named Postgres database, empty or a copy of the database at URL
    `template` (which nothing may be connected to); returns its URL."""
    from sqlalchemy import create_engine, text

    name = f"iimm_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    engine.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by `create_database`."""
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@dataclass
class Stack:
    """A running service: API process, worker processes, settings as environment."""

    kind: str
    env: dict[str, str]
    data_dir: Path
    port: int = field(default_factory=free_port)
    admin_key: str = ""
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.data_dir / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, *args], env=self.env, cwd=ROOT, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip

    def start_api(self) -> None:
        args = ["-m", "uvicorn", "--factory", "app.main:create_app", "--port", str(self.port)]
        self.api = self._spawn([*args, "--log-level", "warning"], "api")
        wait_http(f"{self.url}/healthz", proc=self.api)
        if not self.admin_key:
            key_file = self.data_dir / "admin.key"
            self.admin_key = self.env.get("IIMM_BOOTSTRAP_API_KEY") or key_file.read_text().strip()

    def start_worker(self, queues: tuple[str, ...] = ("gpu", "cpu")) -> subprocess.Popen[bytes]:
        """A worker process consuming `queues` (both by default)."""
        if self.kind == "embedded":
            proc = self._spawn(["-m", "workers.runner", *queues], "worker")
        else:
            name = f"w{uuid.uuid4().hex[:6]}@%h"
            proc = self._spawn(
                ["-m", "celery", "-A", "workers.celery_app", "worker", "--pool=solo", "-Q",
                 ",".join(queues), "-n", name, "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-l", "warning"],
                "worker",
            )  # fmt: skip
        self.workers.append(proc)
        return proc

    def signal_workers(self, sig: int) -> None:
        """Send ``sig`` to every worker's process group (e.g. SIGSTOP/SIGCONT); no wait."""
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, sig)

    def worker_id(self, proc: subprocess.Popen[bytes]) -> str:
        """The `worker` a job run by `proc` records (host:pid; Celery's solo pool runs jobs
        in the worker's main process)."""
        return f"{socket.gethostname()}:{proc.pid}"

    def kill_worker(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one worker's process group and wait for it to end."""
        os.killpg(proc.pid, sig)
        proc.wait(timeout=120)
        self.workers.remove(proc)

    def wait_workers_ready(self, n: int, timeout: float = 300.0) -> None:
        """Wait until `n` Celery workers answer a broadcast ping (they consume their queues)."""
        from celery import Celery

        from app.config import Settings
        from app.jobs.broker import celery_config

        keys = ("IIMM_BROKER_URL", "IIMM_BROKER_KEY_PREFIX")
        settings = Settings(**{k.removeprefix("IIMM_").lower(): self.env[k] for k in keys})
        app = Celery("iimm-test-ping", set_as_current=False)
        app.conf.update(celery_config(settings))
        deadline = time.monotonic() + timeout
        while len(app.control.ping(timeout=1.0) or []) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {n} workers answered in {timeout}s")

    def kill_workers(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to every worker's process group, then wait for each to end (their
        shutdowns overlap)."""
        self._signal_all(sig)
        self._wait_workers()

    def _signal_all(self, sig: int) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, sig)

    def _wait_workers(self) -> None:
        for proc in self.workers:
            proc.wait(timeout=120)  # a SIGTERM'd worker gives its job back first
        self.workers.clear()

    def stop(self) -> None:
        """SIGTERM to the workers and the API at once, then wait for each."""
        self._signal_all(signal.SIGTERM)
        api = self.api if self.api is not None and self.api.poll() is None else None
        if api is not None:
            api.terminate()
        self._wait_workers()
        if api is not None:
            try:
                api.wait(timeout=15)
            except subprocess.TimeoutExpired:
                api.kill()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def new_key(self, project: str) -> str:
        """A key for a new project, made straight in the database as `iimm keys create`
        makes it (`run_create`), in this process: a CLI process per key cost about a CPU
        second (tests/iimm_cli/test_keys_cli.py runs the command itself)."""
        from app.auth.service import create_key
        from app.config import Settings
        from app.db import make_engine, make_sessionmaker, session_scope

        url = self.env.get("IIMM_DATABASE_URL") or Settings(data_dir=self.data_dir).db_url
        engine = make_engine(url)
        try:
            with session_scope(make_sessionmaker(engine)) as session:
                return create_key(session=session, project_name=project)
        finally:
            engine.dispose()


# Short enough that a lost worker is found in seconds, long enough that a heartbeat (every
# lease/3) delayed by a saturated machine does not look like a lost worker.
LEASE_S = 12.0


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a test stack: short leases so faults are found in seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IIMM_")}
    env.update(
        IIMM_DATA_DIR=str(data_dir), IIMM_LEASE_S=str(LEASE_S), IIMM_REAPER_INTERVAL_S="1",
        IIMM_RELAY_INTERVAL_S="0.5", IIMM_WORKER_POLL_S="0.2", IIMM_EMBED_BATCH_SIZE="16",
        IIMM_ALLOWED_ROOTS=f'["{data_dir}"]', OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    env.update(extra)
    return env


def embedded_stack(data_dir: Path, **extra: str) -> Stack:
    """An embedded stack (SQLite, database-polling worker), API started, no worker yet."""
    stack = Stack("embedded", base_env(data_dir, **extra), data_dir)
    stack.start_api()
    return stack


def production_env(data_dir: Path, db_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """Environment of a production stack on Postgres and Redis."""
    return base_env(
        data_dir, IIMM_MODE="production", IIMM_DATABASE_URL=db_url, IIMM_BROKER_URL=broker_url,
        IIMM_STORAGE_URL=str(data_dir / "artifacts"),
        IIMM_BROKER_KEY_PREFIX=f"t{uuid.uuid4().hex[:8]}:",
        IIMM_BOOTSTRAP_API_KEY="test-" + secrets.token_hex(16), **extra,
    )  # fmt: skip


def migrate(env: dict[str, str]) -> None:
    """`iimm db upgrade` with `env`."""
    subprocess.run(
        [sys.executable, "-m", "iimm_cli", "db", "upgrade"], env=env, cwd=ROOT, check=True,
        capture_output=True,
    )  # fmt: skip


_HEAD: list[str] = []  # this process's migrated template database, once made


def head_database() -> str:
    """This process's database at the migrations' head, made once by `iimm db upgrade`
    (without a bootstrap key, so no key at all) and dropped when the process exits.

    Production stacks start from copies of it instead of each running every migration in a
    new process (seconds of CPU, tens of seconds on a loaded machine); nothing connects to
    it after the upgrade, as a template requires.
    """
    if not _HEAD:
        url = create_database()
        atexit.register(drop_database, url)
        env = production_env(Path(tempfile.mkdtemp(prefix="iimm-head-")), url, "redis://unused")
        del env["IIMM_BOOTSTRAP_API_KEY"]
        migrate(env)
        shutil.rmtree(env["IIMM_DATA_DIR"], ignore_errors=True)
        _HEAD.append(url)
    return _HEAD[0]


def bootstrap(env: dict[str, str]) -> None:
    """`iimm db upgrade`'s work (`prepare_database`) in this process, on a copy of
    `head_database`: no migration left to apply, then the first admin key
    (`IIMM_BOOTSTRAP_API_KEY` of `env`)."""
    from app.config import Settings
    from app.main import prepare_database

    settings = Settings(
        mode="production", database_url=env["IIMM_DATABASE_URL"],
        broker_url=env["IIMM_BROKER_URL"], storage_url=env["IIMM_STORAGE_URL"],
        bootstrap_api_key=env["IIMM_BOOTSTRAP_API_KEY"],
    )  # fmt: skip
    prepare_database(settings)


def production_stack(data_dir: Path, broker_url: str, **extra: str) -> tuple[Stack, str]:
    """A production stack on a new Postgres database (a copy of `head_database` with its
    bootstrap key); returns (stack, database URL)."""
    db_url = create_database(template=head_database())
    env = production_env(data_dir, db_url, broker_url, **extra)
    bootstrap(env)
    stack = Stack("production", env, data_dir)
    stack.start_api()
    return stack, db_url


def wait_job(client: httpx.Client, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    """Poll a job until it is final (or `timeout` passed: a failure bound, generous because a
    loaded machine runs jobs several times slower; it costs nothing when they finish)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def until(what: str, check: Callable[[], Any], timeout: float = 300.0, poll: float = 0.1) -> Any:
    """Poll `check` until it returns something true and return that; fails naming `what`
    after `timeout` (a failure bound, as `wait_job`'s)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return value


def ingested(client: httpx.Client, resp: httpx.Response, timeout: float = 600.0) -> httpx.Response:
    """The end of an upload or registration: for a 202 (the dataset `validating`), wait for
    its ingest job, then the dataset as `GET /v1/datasets/{id}` answers it (200) or, when it
    failed, its problem (`error`) as the response a synchronous request would have been
    (that status, problem+json). Any other response is returned as it is."""
    if resp.status_code != 202:
        return resp
    accepted = resp.json()
    assert accepted["status"] == "validating" and accepted["job_id"], accepted
    assert resp.headers["location"] == f"/v1/jobs/{accepted['job_id']}"
    job = wait_job(client, accepted["job_id"], timeout)
    assert job["status"] in FINAL, f"ingest job still {job['status']} after {timeout}s"
    got = client.get(f"/v1/datasets/{accepted['id']}")
    if got.status_code != 200 or got.json()["status"] != "failed":
        return got
    problem = {k: v for k, v in got.json()["error"].items() if v is not None}
    assert job["status"] == "failed" and job["error"] == problem["detail"], (job, problem)
    return httpx.Response(
        problem["status"], json=problem, request=got.request,
        headers={"content-type": "application/problem+json"},
    )  # fmt: skip


def zip_dir(src: Path, dest: Path) -> Path:
    """Zip a folder (paths relative to it)."""
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src).as_posix())
    return dest


def make_task(out: Path, task: str = "shapes", per_class: int = 8, seed: int = 0) -> Path:
    """A small synthetic image-folder dataset (train/test)."""
    from workers.ml.synth import generate_task

    if out.exists():
        shutil.rmtree(out)
    return generate_task(task, out, per_class=per_class, seed=seed)


def iter_final(jobs: list[dict[str, Any]]) -> Iterator[str]:
    for job in jobs:
        yield job["status"]
