"""Fixtures of the service tests: running stacks (embedded and production) and datasets.

Each module shares one stack per configuration (processes are slow to start on 2 cores);
tests isolate themselves with their own projects (API keys) or their own stacks.
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


@pytest.fixture(scope="module", params=["embedded", "production"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A running stack with one worker, in both configurations."""
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
