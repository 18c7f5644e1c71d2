"""The deployment docs against the code they describe: the README's settings table names
every `Settings` field, docs/scaling.md's job-type → queue table is the job registry's, and
docker-compose.yml's workers consume every queue, the `gpu` queue (image decoding) only
with `--pool=solo`, both with and without GPUs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from app.config import Settings
from app.jobs.registry import JOB_TYPES

ROOT = Path(__file__).resolve().parents[1]


def _table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_the_readme_settings_table_names_every_setting() -> None:
    rows = _table_rows((ROOT / "README.md").read_text(), "| variable | default | meaning |")
    named = set(re.findall(r"`IIMM_([A-Z0-9_]+)", " ".join(" ".join(r) for r in rows)))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - named == set(), "settings missing from the README's table"
    assert named - fields == set(), "the README's table names settings that do not exist"


def test_the_scaling_docs_queue_table_is_the_registrys() -> None:
    rows = _table_rows((ROOT / "docs/scaling.md").read_text(), "| job type | queue |")
    documented = {r[0].strip("`"): r[1].strip("`") for r in rows}
    assert documented == {t.name: t.queue for t in JOB_TYPES}


def _consumers(services: dict[str, dict]) -> dict[str, tuple[set[str], str]]:
    """Worker service → (queues it consumes, its pool)."""
    out = {}
    for name, service in services.items():
        command = service.get("command") or []
        if "celery" not in command:
            continue
        queues = set(command[command.index("-Q") + 1].split(","))
        pool = next((a.split("=", 1)[1] for a in command if a.startswith("--pool=")), "prefork")
        out[name] = (queues, pool)
    return out


def test_compose_workers_cover_every_queue_and_decode_only_with_solo() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    workers = _consumers(services)
    queues = {t.queue for t in JOB_TYPES}
    default = {n for n in workers if not services[n].get("profiles")}
    assert set().union(*(workers[n][0] for n in default)) == queues
    cpu_only = {
        n for n in workers if services[n].get("environment", {}).get("IIMM_DEVICE") == "cpu"
    }
    assert set().union(*(workers[n][0] for n in cpu_only)) == queues
    for name, (consumed, pool) in workers.items():
        if "gpu" in consumed:  # embedding decodes images in processes prefork children lack
            assert pool == "solo", name


def test_the_scaling_docs_job_fields_and_metrics_are_the_apis(tmp_path: Path) -> None:
    """docs/scaling.md's job series are exported with the labels it gives them, and the
    per-job `worker`, `run_s` and `queue_wait_s` it names are the OpenAPI `JobRead` fields
    that `/metrics` reads: for one finished job, the worker label and the histograms' sums
    are what `GET /v1/jobs/{id}` shows."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from app.db import make_engine, make_sessionmaker, session_scope, utcnow
    from app.health.metrics import QUEUE_WAIT, REGISTRY, RUN_TIME, refresh_job_gauges
    from app.jobs.schemas import JobRead
    from app.main import create_app
    from app.migrate import upgrade
    from app.models import Job, Project

    text = (ROOT / "docs/scaling.md").read_text()
    schema = create_app(Settings(data_dir=tmp_path, run_maintenance_in_api=False)).openapi()
    fields = schema["components"]["schemas"]["JobRead"]["properties"]
    for field in ("worker", "run_s", "queue_wait_s"):
        assert f"`{field}`" in text and field in fields, field
        assert "null" in {t.get("type") for t in fields[field]["anyOf"]}, field
    assert (RUN_TIME.column, QUEUE_WAIT.column) == ("run_s", "queue_wait_s")

    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    factory = make_sessionmaker(make_engine(url))
    now = utcnow()
    with session_scope(factory) as session:
        session.add(Project(id="prj_1", name="p"))
        session.flush()
        session.add(Job(id="job_1", project_id="prj_1", type="embed", queue="gpu",
                        params={"model_id": "mdl_1", "dataset_id": "dst_1"},
                        status="succeeded", worker_id="host:7", started_at=now,
                        finished_at=now, run_s=2.5, queue_wait_s=0.25))  # fmt: skip
    with session_scope(factory) as session:
        refresh_job_gauges(session, worker_window_s=900)
        shown = JobRead.model_validate(session.get(Job, "job_1")).model_dump()
    families = {
        f.name: f.samples
        for f in text_string_to_metric_families(generate_latest(REGISTRY).decode())
    }
    documented = set(re.findall(r"`(iimm_[a-z_]+)\{([a-z_,]+)\}", text))
    assert ("iimm_jobs_running", "worker") in documented
    for name, labels in documented:
        assert families.get(name), f"{name} is not exported"
        assert all(set(labels.split(",")) <= set(s.labels) - {"le"} for s in families[name])
    assert [s.labels["worker"] for s in families["iimm_jobs_running"]] == [shown["worker"]]
    for name, field in (("iimm_job_run_seconds", "run_s"),
                        ("iimm_job_queue_wait_seconds", "queue_wait_s")):  # fmt: skip
        (total,) = [s.value for s in families[name] if s.name == f"{name}_sum"]
        assert total == shown[field], name
