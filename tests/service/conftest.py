"""Fixtures of the service tests: running stacks (embedded and production) and datasets.

The modules of one pytest process share one default stack per configuration (processes are
slow to start on 2 cores); tests isolate themselves with their own projects (API keys), or
start their own stacks where they need other settings or the whole store to themselves.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.stack import Stack, embedded_stack, make_task, production_stack, zip_dir


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping())
    except Exception:
        return False


def _postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    """A private temporary folder (not pytest's shared basetemp, which concurrent runs prune)."""
    path = Path(tempfile.mkdtemp(prefix="iimm-service-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def redis_db() -> int:
    """A Redis database number for this run (keys also carry a unique prefix)."""
    return random.randint(1, 15)


#: Webhooks of the shared stacks: only to the tests' receivers on 127.0.0.1, polled often and
#: retried quickly (the embedded mode delivers from the API process).
WEBHOOK_ENV = {
    "IIMM_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
    "IIMM_WEBHOOK_RETRY_BASE_S": "0.3",
    "IIMM_WEBHOOK_INTERVAL_S": "0.2",
    "IIMM_WEBHOOK_TIMEOUT_S": "30",
}


class SharedStacks:
    """The default stacks of one pytest process (an xdist worker), one per kind, each
    started on first use with one worker and stopped when the session ends.

    Starting a stack costs seconds of CPU (an API process, a worker importing torch, for
    production a fresh database and its migration); modules whose tests isolate themselves
    by project (their own API keys, uniquely named rows, content no other module uploads
    when a test asserts a fresh computation) share these. A module that needs other
    settings, checks the whole store (orphan sweeps) or stops the API starts its own.

    Their settings are the tests' defaults plus `WEBHOOK_ENV`, so the webhook modules share
    them too (no other module registers endpoints; each project's hooks see only its jobs).
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.stacks: dict[str, Stack] = {}
        self.db_urls: list[str] = []

    def get(self, kind: str) -> Stack:
        """The running stack of `kind` ("embedded" or "production"), with a live worker
        (a module that killed the workers and failed before starting one leaves none)."""
        st = self.stacks.get(kind)
        if st is not None and (st.api is None or st.api.poll() is not None):
            st.stop()  # the API died: start afresh
            st = None
        if st is None:
            data_dir = self.base / f"shared-{kind}"
            data_dir.mkdir()
            if kind == "embedded":
                st = embedded_stack(data_dir, **WEBHOOK_ENV)
            else:
                if not (_redis_up() and _postgres_up()):
                    pytest.skip("Postgres or Redis is not running")
                broker = f"redis://127.0.0.1:6379/{redis_db()}"
                st, db_url = production_stack(data_dir, broker, **WEBHOOK_ENV)
                self.db_urls.append(db_url)
            self.stacks[kind] = st
        st.workers = [p for p in st.workers if p.poll() is None]
        if not st.workers:
            st.start_worker()
        return st

    def stop(self) -> None:
        for st in self.stacks.values():
            st.stop()
        for url in self.db_urls:
            from tests.service.stack import drop_database

            drop_database(url)


@pytest.fixture(scope="session")
def shared_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStacks]:
    """This process's default stacks (see `SharedStacks`)."""
    shared = SharedStacks(tmp_path_factory.mktemp("shared-stacks"))
    try:
        yield shared
    finally:
        shared.stop()


@pytest.fixture(scope="module", params=["embedded", "production"])
def stack(request: pytest.FixtureRequest, shared_stacks: SharedStacks) -> Stack:
    """A running stack with one worker, in both configurations (shared by the modules of
    this process: tests isolate themselves with their own projects)."""
    return shared_stacks.get(request.param)


@pytest.fixture(scope="module", params=["embedded", "production"])
def own_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A running stack with one worker for this module alone, in both configurations."""
    data_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    db_url = None
    if request.param == "embedded":
        st = embedded_stack(data_dir)
    else:
        if not (_redis_up() and _postgres_up()):
            pytest.skip("Postgres or Redis is not running")
        st, db_url = production_stack(data_dir, f"redis://127.0.0.1:6379/{redis_db()}")
    st.start_worker()
    try:
        yield st
    finally:
        st.stop()
        if db_url:
            from tests.service.stack import drop_database

            drop_database(db_url)


@pytest.fixture(scope="session")
def shapes_zip(workdir: Path) -> Path:
    """A zip of a small synthetic dataset (6 classes, 8 images each)."""
    root = workdir / "shapes"
    root.mkdir()
    return zip_dir(make_task(root / "shapes"), root / "shapes.zip")


#: The four small tasks of the end-to-end workflows (generated clients, predictors).
WORKFLOW_TASKS = ("colours", "shapes", "orientations", "textures")


@pytest.fixture(scope="session")
def task_zips(workdir: Path) -> list[Path]:
    """Zips of `WORKFLOW_TASKS` (8 images per class: 6 train, 2 test)."""
    root = workdir / "workflow-tasks"
    root.mkdir()
    return [
        zip_dir(make_task(root / t, task=t, per_class=8, seed=i), root / f"{t}.zip")
        for i, t in enumerate(WORKFLOW_TASKS)
    ]
