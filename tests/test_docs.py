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
