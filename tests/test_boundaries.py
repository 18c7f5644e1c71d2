"""Boundaries: the API never loads torch; settings fail fast; migrations are the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from pydantic import ValidationError

from app.config import Settings
from app.migrate import alembic_config, upgrade
from tests.service.conftest import _postgres_up
from tests.service.stack import ROOT, create_database, drop_database


def test_api_process_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from app.main import create_app\n"
        "from app.config import Settings\n"
        "import app.measures, app.imagedata\n"
        "from fastapi.testclient import TestClient\n"
        "import tempfile\n"
        "with TestClient(create_app(Settings(data_dir=tempfile.mkdtemp()))) as c:\n"
        "    assert c.get('/readyz').status_code == 200\n"
        "    c.get('/openapi.json')\n"
        "bad = [m for m in ('torch', 'open_clip', 'torchvision', 'workers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "production"}, "IIMM_DATABASE_URL"),
        (
            {
                "mode": "production",
                "database_url": "sqlite:///x.db",
                "broker_url": "redis://x",
                "storage_url": "/tmp/x",
            },
            "Postgres",
        ),
        ({"bootstrap_api_key": "short"}, "24 characters"),
        ({"task_hard_limit_s": 100, "broker_visibility_timeout_s": 50}, "VISIBILITY"),
    ],
)
def test_settings_fail_fast(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def _check_matches_models(url: str) -> None:
    upgrade(url)
    command.check(alembic_config(url))  # raises if the models differ from the migrations
    command.downgrade(alembic_config(url), "base")
    upgrade(url)


def test_migrations_are_the_schema_sqlite(tmp_path: Path) -> None:
    _check_matches_models(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.skipif(not _postgres_up(), reason="Postgres is not running")
def test_migrations_are_the_schema_postgres() -> None:
    url = create_database()
    try:
        _check_matches_models(url)
    finally:
        drop_database(url)
