"""Process hygiene: `iimm serve` stops everything it started on SIGTERM/SIGINT, and the
decoding processes of a worker killed with SIGKILL die with it.

Real processes throughout (`iimm serve`, `workers.runner`, Celery), listed with psutil.
Nothing here measures time: every wait polls for a condition and fails after a generous
limit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from tests.service.conftest import _postgres_up, _redis_up, redis_db
from tests.service.stack import (
    ROOT,
    Stack,
    base_env,
    drop_database,
    embedded_stack,
    free_port,
    make_task,
    production_stack,
    wait_http,
    wait_job,
    zip_dir,
)
from tests.service.test_api import add_tiny, upload

GONE_WITHIN_S = 180.0  # generous: the machine is shared; the service aims at a few seconds
# `iimm demo` kills what is left of its service's process group 30 s after its SIGTERM
DEMO_GONE_WITHIN_S = 60.0


@pytest.fixture(scope="module")
def slow_zip(workdir: Path) -> Path:
    """A dataset whose train split takes seconds to embed with batches of 2."""
    root = workdir / "slow"
    root.mkdir(exist_ok=True)
    return zip_dir(make_task(root / "data", per_class=64, seed=3), root / "slow.zip")


def wait_for(what: str, check: Callable[[], object], timeout: float = 300.0) -> object:
    """Poll `check` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of `procs` still running (zombies count as gone)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def start_embed(c: httpx.Client, archive: Path) -> str:
    ds, model = upload(c, archive).json(), add_tiny(c)
    body = {"type": "embed", "model_id": model["id"], "dataset_id": ds["id"], "split": "train"}
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code in (201, 202), resp.text
    return str(resp.json()["id"])


def running_with_decoders(c: httpx.Client, job_id: str, worker_pid: int) -> bool:
    """The job runs and the worker has started its decoding process(es)."""
    job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] in ("queued", "running"), job
    return job["status"] == "running" and bool(descendants(worker_pid))


def our_temp_entries(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("iimm-"))


def start_serve(data_dir: Path, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = base_env(data_dir, IIMM_EMBED_BATCH_SIZE="2", TMPDIR=str(tmp))
    log = (data_dir / "serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "iimm_cli", "serve", "--port", str(port)],
        env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
    return proc


def admin_client(data_dir: Path, port: int) -> httpx.Client:
    key = (data_dir / "admin.key").read_text().strip()
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


@pytest.mark.parametrize(
    ("sig", "target", "busy"),
    [
        (signal.SIGTERM, "pid", True),
        (signal.SIGINT, "pid", True),
        (signal.SIGTERM, "group", True),
        (signal.SIGINT, "group", True),
        (signal.SIGTERM, "group", False),
        (signal.SIGINT, "group", False),
    ],
    ids=["sigterm", "sigint", "sigterm-group", "sigint-group", "sigterm-group-idle",
         "sigint-group-idle"],
)  # fmt: skip
def test_serve_stops_everything(
    sig: signal.Signals, target: str, busy: bool, workdir: Path, slow_zip: Path
) -> None:
    """Mid-embedding (or idle after one), a signal to `iimm serve` (its pid as `kill` does, or its
    process group as a terminal's Ctrl-C, `kill -TERM -<pgid>` and systemd's
    KillMode=control-group do: the worker and its decoding processes get it too, and then
    serve's own stop request) ends the API, the worker and its decoding processes, removes
    their temp folders (ours and Python multiprocessing's `pymp-*`, which only a clean exit
    removes), and gives the job back: queued again with its attempt refunded, and a new
    `iimm serve` finishes it (checked after SIGTERM to the pid)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"serve-{sig.name}-", dir=workdir))
    tmp = data_dir / "tmp"
    tmp.mkdir()
    port = free_port()
    serve = start_serve(data_dir, tmp, port)
    started: list[psutil.Process] = []
    try:
        with admin_client(data_dir, port) as c:
            job_id = start_embed(c, slow_zip)
            worker = wait_for("the embedded worker", lambda: descendants(serve.pid))
            pid = worker[0].pid  # type: ignore[index]
            if busy:
                wait_for("decoding", lambda: running_with_decoders(c, job_id, pid))
            else:  # idle, its decoding processes (and their pymp- folder) kept for the next job
                assert wait_job(c, job_id)["status"] == "succeeded"
                assert any(n.startswith("pymp-") for n in our_leftovers(tmp))
        started = [psutil.Process(serve.pid), *descendants(serve.pid)]
        assert len(started) >= 3  # serve, worker, decoding process(es)
        signalled = time.monotonic()
        if target == "pid":
            serve.send_signal(sig)
        else:
            os.killpg(serve.pid, sig)
        wait_for("every process to end", lambda: not alive(started), GONE_WITHIN_S)
        print(f"{sig.name} to the {target}: all gone after {time.monotonic() - signalled:.1f} s")
        serve.wait(timeout=10)
        assert our_leftovers(tmp) == []
    finally:
        for p in alive(started):
            p.kill()
    if not busy:
        return
    row = _job_row(f"sqlite:///{(data_dir / 'iimm.db').resolve()}", job_id)
    # given back: queued again, the stopped attempt refunded
    assert (row["status"], row["attempts"], row["max_attempts"]) == ("queued", 1, 4), row
    if target == "group" or sig == signal.SIGINT:
        return  # a new serve finishing the job is checked once, after SIGTERM to the pid
    port = free_port()
    serve = start_serve(data_dir, tmp, port)
    try:
        with admin_client(data_dir, port) as c:
            given_back = c.get(f"/v1/jobs/{job_id}").json()
            final = wait_job(c, job_id)
        assert final["status"] == "succeeded", final
        # the stopped attempt was refunded: the job keeps its whole retry budget
        assert final["attempts"] == 2 and final["max_attempts"] == 4, (given_back, final)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=GONE_WITHIN_S)


# `iimm demo` with a stand-in for the paper's loop (test_reference_e2e runs the real one): it
# embeds `argv[1]` on the tiny model through the demo's client and, in phase "loop", waits
# inside the loop forever; in phase "keep-serving" it returns once the job succeeded, so the
# demo keeps serving with a worker that keeps its decoding processes (a persistent pool)
DEMO = """
import sys, threading
from pathlib import Path
from iimm_cli import demo_loop, demo_report, main
from iimm_cli.demo_loop import LoopResult
from tests.service.stack import wait_job
from tests.service.test_processes import start_embed

def run_loop(client, work, cfg, log=print):
    job_id = start_embed(client.http, Path(sys.argv[1]))
    log(f"loop: embedding {job_id}")
    if sys.argv[2] == "loop":
        threading.Event().wait()
    assert wait_job(client.http, job_id)["status"] == "succeeded"
    return LoopResult({"id": job_id}, {})

demo_loop.run_loop, demo_report.print_report = run_loop, lambda result: None
sys.exit(main(["demo", *sys.argv[3:]]))
"""


def our_leftovers(tmp: Path) -> list[str]:
    """Our temp folders (`iimm-`: the demo's work and data, decoding payloads) and those of
    Python's multiprocessing (`pymp-`, removed by a process that exits cleanly)."""
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("iimm-", "pymp-")))


@pytest.mark.parametrize(
    ("phase", "sig", "kept"),
    [("keep-serving", signal.SIGTERM, False), ("keep-serving", signal.SIGINT, True),
     ("loop", signal.SIGTERM, True)],
    ids=["keep-serving-sigterm", "keep-serving-sigint-data-dir", "loop-sigterm"],
)  # fmt: skip
def test_demo_stops_everything(
    phase: str,
    sig: signal.Signals,
    kept: bool,
    workdir: Path,
    slow_zip: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A signal to the process group of `iimm demo` (a terminal's Ctrl-C, `docker stop`),
    while it serves after the loop or during the loop's embedding, ends the demo, its `iimm
    serve`, the worker and the decoding processes, and leaves none of their temp folders
    (nor the demo's own work folder, also with --data-dir)."""
    root = Path(tempfile.mkdtemp(prefix=f"demo-{phase}-{sig.name}-", dir=workdir))
    tmp = root / "tmp"
    tmp.mkdir()
    port = free_port()
    args = ["--keep-serving", "--port", str(port)]
    if kept:
        args += ["--data-dir", str(root / "var")]
    env = base_env(root, IIMM_EMBED_BATCH_SIZE="2", TMPDIR=str(tmp))
    env.pop("IIMM_DATA_DIR")  # the demo's own choice (a temp dir) unless --data-dir
    log_path = root / "demo.log"
    with log_path.open("ab") as log:
        demo = subprocess.Popen(
            [sys.executable, "-c", DEMO, str(slow_zip), phase, *args],
            env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    started: list[psutil.Process] = []
    try:

        def ready() -> bool:
            assert demo.poll() is None, log_path.read_text()
            if phase == "keep-serving":
                return "Serving until Ctrl-C" in log_path.read_text()
            if "loop: embedding" not in log_path.read_text():
                return False
            job_id = log_path.read_text().split("loop: embedding ")[1].split()[0]
            with admin_client(root / "var", port) as c:
                serve = descendants(demo.pid)[0]
                return running_with_decoders(c, job_id, serve.children()[0].pid)

        wait_for(f"the demo's {phase} phase", ready)
        started = [psutil.Process(demo.pid), *descendants(demo.pid)]
        assert len(started) >= 4, started  # demo, serve, worker, decoding process(es)
        os.killpg(demo.pid, sig)
        signalled = time.monotonic()
        wait_for("every process to end", lambda: not alive(started), DEMO_GONE_WITHIN_S)
        with capsys.disabled():  # measured, not asserted (the machine is shared)
            print(f"\n[{phase} {sig.name}] all gone {time.monotonic() - signalled:.1f} s after")
        assert demo.wait(timeout=10) == 128 + sig, log_path.read_text()
        assert our_leftovers(tmp) == []
    finally:
        for p in alive(started):
            p.kill()
        if demo.poll() is None:
            demo.kill()
            demo.wait()


@pytest.mark.parametrize("kind", ["embedded", "production"])
def test_sigkill_worker_leaves_no_decoder(kind: str, workdir: Path, slow_zip: Path) -> None:
    """SIGKILL of a worker (its pid only, as the OOM killer does) mid-embedding: its
    decoding processes end too, and the retried job succeeds on another worker."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"kill-{kind}-", dir=workdir))
    tmp = data_dir / "tmp"
    tmp.mkdir()
    extra = {"IIMM_EMBED_BATCH_SIZE": "2", "TMPDIR": str(tmp)}
    db_url = None
    stack: Stack
    if kind == "embedded":
        stack = embedded_stack(data_dir, **extra)
    else:
        if not (_postgres_up() and _redis_up()):
            pytest.skip("Postgres or Redis is not running")
        stack, db_url = production_stack(data_dir, f"redis://127.0.0.1:6379/{redis_db()}", **extra)
    orphans: list[psutil.Process] = []
    try:
        first = stack.start_worker()
        with stack.client() as c:
            job_id = start_embed(c, slow_zip)
            wait_for("decoding", lambda: running_with_decoders(c, job_id, first.pid))
            orphans = descendants(first.pid)
            first.kill()  # the worker alone, not its process group
            first.wait(timeout=30)
            stack.workers.remove(first)
            stack.start_worker()
            final = wait_job(c, job_id)
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 2
        wait_for("the killed worker's decoders to end", lambda: not alive(orphans), GONE_WITHIN_S)
        # the killed worker's payload folder is swept by the next pool of this temp dir
        assert not [n for n in our_temp_entries(tmp) if n.startswith(f"iimm-decode-{first.pid}-")]
    finally:
        for p in alive(orphans):
            p.kill()
        stack.stop()
        if db_url:
            drop_database(db_url)


@pytest.mark.parametrize("kind", ["embedded", "production"])
def test_sigkill_mid_ingest_leaves_no_ingest_folder(kind: str, workdir: Path) -> None:
    """SIGKILL of a worker while its ingest job decodes: its `tmp/iimm-ingest-*` folder
    stays behind (no clean-up ran) until the next worker starts on the machine, which
    removes it (its owner is dead) before it retries the job in a folder of its own."""
    import zipfile

    from tests.service.test_ingest import _large_png

    data_dir = Path(tempfile.mkdtemp(prefix=f"kill-ingest-{kind}-", dir=workdir))
    tmp = data_dir / "tmp"
    tmp.mkdir()
    images = [_large_png(2400, step) for step in (3, 5)]
    archive = data_dir / "large.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(60):
            zf.writestr(f"{'ab'[i % 2]}/{i}.png", images[i % 2])
    db_url = None
    stack: Stack
    if kind == "embedded":
        stack = embedded_stack(data_dir, TMPDIR=str(tmp))
    else:
        if not (_postgres_up() and _redis_up()):
            pytest.skip("Postgres or Redis is not running")
        stack, db_url = production_stack(
            data_dir, f"redis://127.0.0.1:6379/{redis_db()}", TMPDIR=str(tmp)
        )
    try:
        first = stack.start_worker(queues=("cpu",))
        with stack.client() as c:
            accepted = upload(c, archive, name="large", wait=False).json()  # type: ignore[arg-type]
            job_path = f"/v1/jobs/{accepted['job_id']}"

            def decoding_in_its_folder() -> list[str]:
                job = c.get(job_path).json()
                assert job["status"] in ("queued", "running"), job
                stage = (job.get("progress") or {}).get("stage")
                folders = [n for n in our_temp_entries(tmp) if n.startswith("iimm-ingest-")]
                return folders if stage == "decoding" else []

            left = wait_for("the ingest job decoding", decoding_in_its_folder)
            first.kill()  # the worker alone, as the OOM killer does
            first.wait(timeout=30)
            stack.workers.remove(first)
            assert [n for n in our_temp_entries(tmp) if n.startswith("iimm-ingest-")] == left
            assert all(n.split("-")[2] == str(first.pid) for n in left), left  # its owner
            stack.start_worker(queues=("cpu",))
            final = wait_job(c, accepted["job_id"], timeout=240)
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 2
        assert [n for n in our_temp_entries(tmp) if n.startswith("iimm-ingest-")] == []
    finally:
        stack.stop()
        if db_url:
            drop_database(db_url)


def _start_celery(stack: Stack, pool: str) -> subprocess.Popen[bytes]:
    """A Celery worker on both queues with `pool` (`solo`, as for a GPU, or `prefork` with
    one pool process, as for CPUs)."""
    if pool == "solo":
        return stack.start_worker()
    proc = stack._spawn(
        ["-m", "celery", "-A", "workers.celery_app", "worker", "--pool=prefork",
         "--concurrency=1", "-Q", "gpu,cpu", "-n", f"prefork{os.getpid()}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
        "worker",
    )  # fmt: skip
    stack.workers.append(proc)
    return proc


def _job_row(db_url: str, job_id: str) -> dict[str, object]:
    from sqlalchemy import create_engine, select

    from app.models import Job

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(Job.status, Job.attempts, Job.max_attempts, Job.worker_id,
                       Job.lease_expires_at, Job.stage).where(Job.id == job_id)
            ).one()  # fmt: skip
    finally:
        engine.dispose()
    return dict(row._mapping)


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_sigterm_to_a_celery_worker_gives_its_job_back(
    pool: str, workdir: Path, slow_zip: Path
) -> None:
    """SIGTERM to a Celery worker mid-embedding (its main pid, as `docker stop` does): the job
    is back in the queue, unleased and with its attempt refunded, while its lease (600 s)
    is far from expiring, so the reaper did not do it; the worker exits 0 with its
    processes, and another worker finishes the job."""
    if not (_postgres_up() and _redis_up()):
        pytest.skip("Postgres or Redis is not running")
    data_dir = Path(tempfile.mkdtemp(prefix=f"term-{pool}-", dir=workdir))
    stack, db_url = production_stack(
        data_dir, f"redis://127.0.0.1:6379/{redis_db()}",
        IIMM_EMBED_BATCH_SIZE="2", IIMM_LEASE_S="600",
    )  # fmt: skip
    started: list[psutil.Process] = []
    try:
        first = _start_celery(stack, pool)
        with stack.client() as c:
            job_id = start_embed(c, slow_zip)
            wait_for("the job to run", lambda: _job_row(db_url, job_id)["status"] == "running")
            ran = _job_row(db_url, job_id)
            assert ran["lease_expires_at"] is not None and ran["attempts"] == 1
            started = [psutil.Process(first.pid), *descendants(first.pid)]
            # Frozen while signalled: the job cannot end on its own before the stop is seen.
            os.killpg(first.pid, signal.SIGSTOP)
            first.send_signal(signal.SIGTERM)
            os.killpg(first.pid, signal.SIGCONT)

            def given_back() -> bool:
                row = _job_row(db_url, job_id)
                assert row["status"] in ("running", "queued"), row
                return row["status"] == "queued"

            wait_for("the job to be given back", given_back, GONE_WITHIN_S)
            back = _job_row(db_url, job_id)
            assert back["lease_expires_at"] is None
            assert str(back["stage"]).startswith("retrying: worker stopped"), back
            assert back["attempts"] == 1 and back["max_attempts"] == 4  # refunded, not reaped
            assert first.wait(timeout=GONE_WITHIN_S) == 0
            stack.workers.remove(first)
            wait_for("the worker's processes to end", lambda: not alive(started), GONE_WITHIN_S)
            second = stack.start_worker()
            final = wait_job(c, job_id)
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 2 and final["worker"] == stack.worker_id(second)
    finally:
        for p in alive(started):
            p.kill()
        stack.stop()
        drop_database(db_url)
