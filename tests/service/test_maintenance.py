"""`iimm maintenance`: with the API's maintenance thread off, jobs wait in the outbox until
the separate process relays them to the broker; it stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.service.conftest import _postgres_up, _redis_up, redis_db
from tests.service.stack import ROOT, drop_database, production_stack, wait_job
from tests.service.test_api import add_tiny, upload


def test_a_separate_maintenance_process_relays_the_outbox(workdir: Path, shapes_zip: Path) -> None:
    if not (_postgres_up() and _redis_up()):
        pytest.skip("Postgres or Redis is not running")
    data_dir = Path(tempfile.mkdtemp(prefix="maint-", dir=workdir))
    stack, db_url = production_stack(data_dir, f"redis://127.0.0.1:6379/{redis_db()}",
                                     IIMM_RUN_MAINTENANCE_IN_API="false")  # fmt: skip
    proc = None
    try:
        stack.start_worker()
        with stack.client() as c:
            # the upload's ingest job is the job waiting in the outbox
            ds, model = upload(c, shapes_zip, wait=False).json(), add_tiny(c)
            time.sleep(3.0)  # six relay intervals: nobody publishes it
            assert c.get(f"/v1/jobs/{ds['job_id']}").json()["status"] == "queued"
            metrics = c.get("/metrics").text
            assert "iimm_outbox_pending 1.0" in metrics
            once = subprocess.run([sys.executable, "-m", "iimm_cli", "maintenance", "--once"],
                                  env=stack.env, cwd=ROOT, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
            assert once.returncode == 0, once.stderr
            assert wait_job(c, ds["job_id"])["status"] == "succeeded"
            body = {"type": "embed", "model_id": model["id"], "dataset_id": ds["id"]}
            first = c.post("/v1/jobs", json=body).json()
            second = c.post("/v1/jobs", json={**body, "split": "train"}).json()
            log = (data_dir / "maintenance.log").open("wb")
            proc = subprocess.Popen([sys.executable, "-m", "iimm_cli", "maintenance"],
                                    env=stack.env, cwd=ROOT, stdout=log, stderr=log)  # fmt: skip
            assert wait_job(c, first["id"])["status"] == "succeeded"
            assert wait_job(c, second["id"])["status"] == "succeeded"
            assert "iimm_outbox_pending 0.0" in c.get("/metrics").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        assert "relay every 0.5s (broker)" in (data_dir / "maintenance.log").read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        stack.stop()
        drop_database(db_url)
