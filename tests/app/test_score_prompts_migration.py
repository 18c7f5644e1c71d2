"""Migration 0011 gives the scores stored before it the prompts of the job that computed
them (and their `prompts_hash`), `default` where the job gave none."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.imagedata.prompts import prompts_hash
from app.migrate import upgrade

OTHER = ["a blurry photo of a {c}."]


def _row(table: sa.Table, **given: Any) -> dict[str, Any]:
    """`given`, and a placeholder for every other NOT NULL column without a default."""
    row = dict(given)
    for col in table.columns:
        if col.name in row or col.nullable or col.server_default is not None:
            continue
        placeholders = {str: "x", int: 0, float: 0.0, bool: False, dict: {}, list: []}
        python = col.type.python_type
        row[col.name] = placeholders.get(python, datetime(2026, 11, 29, tzinfo=UTC))
    return row


def test_old_scores_get_their_jobs_prompts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0010_ingest_jobs")
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine, only=["jobs", "scores"])
    jobs, scores = meta.tables["jobs"], meta.tables["scores"]
    with engine.begin() as conn:
        for job_id, params in (("job_a", {"prompts": OTHER}), ("job_b", {"split": "test"})):
            conn.execute(jobs.insert().values(_row(jobs, id=job_id, params=params)))
        for score_id, job_id in (("scr_a", "job_a"), ("scr_b", "job_b"), ("scr_c", None)):
            row = _row(scores, id=score_id, job_id=job_id, measure=score_id, warnings=[])
            conn.execute(scores.insert().values(row))
    engine.dispose()
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT id, prompts, prompts_hash FROM scores ORDER BY id"))
        rows = [tuple(r) for r in got]
    engine.dispose()
    assert rows == [
        ("scr_a", '["a blurry photo of a {c}."]', prompts_hash(OTHER)),
        ("scr_b", None, "default"),
        ("scr_c", None, "default"),
    ]
