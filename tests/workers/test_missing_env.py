"""A Celery worker, an API or an `iimm` command started without its environment stops at
once with one line saying what to set (exit status 1; 2 for `iimm`), instead of a Celery
worker waiting on `amqp://guest@localhost:5672` for jobs that never come or a pydantic
traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: A failure bound only: each process is expected to exit long before it.
EXIT_WITHIN_S = 120


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True,
        timeout=EXIT_WITHIN_S, check=False,
    )  # fmt: skip


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert lines, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    return lines[-1]


WORKER = ["-m", "celery", "-A", "workers.celery_app", "worker", "--pool=solo", "-Q", "gpu,cpu"]


def test_a_celery_worker_without_any_env_refuses_in_one_line(tmp_path: Path) -> None:
    proc = _run(WORKER, tmp_path)
    assert proc.returncode == 1, proc
    line = _last_line(proc)
    assert line.startswith("iimm: the Celery worker runs only in production mode"), line
    for name in ("IIMM_MODE=production", "IIMM_DATABASE_URL", "IIMM_BROKER_URL (redis://"):
        assert name in line
    assert "the Celery worker's environment" in line
    assert "amqp" not in proc.stdout + proc.stderr  # it never went looking for a broker


def test_a_celery_worker_without_a_broker_names_it(tmp_path: Path) -> None:
    proc = _run(
        WORKER, tmp_path, IIMM_MODE="production", IIMM_STORAGE_URL=str(tmp_path),
        IIMM_DATABASE_URL="postgresql+psycopg://iimm@127.0.0.1:1/none",
    )  # fmt: skip
    assert proc.returncode == 1, proc
    assert _last_line(proc) == (
        "iimm: production mode needs IIMM_BROKER_URL (redis://host:6379/0);"
        " set it in the Celery worker's environment"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"IIMM_MODE": "production"}, "production mode needs IIMM_DATABASE_URL ("),
        ({"IIMM_LEASE_S": "soon"}, "IIMM_LEASE_S: Input should be a valid number"),
    ],
)
def test_the_api_refuses_in_one_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    proc = _run(["-c", "from app.main import create_app; create_app()"], tmp_path, **env)
    assert proc.returncode == 1, proc
    line = _last_line(proc)
    assert line.startswith("iimm: " + expected), line
    assert line.endswith("in the API's environment"), line


@pytest.mark.parametrize("command", [["db", "upgrade"], ["maintenance", "--once"]])
def test_iimm_commands_refuse_in_one_line(tmp_path: Path, command: list[str]) -> None:
    proc = _run(["-m", "iimm_cli", *command], tmp_path, IIMM_MODE="production")
    assert proc.returncode == 2, proc
    line = _last_line(proc)
    assert line.startswith(
        f"iimm {command[0]}: error: production mode needs IIMM_DATABASE_URL ("
    ), line
    assert line.endswith("; set them in the environment"), line
