"""Migration 0012 on a database that already holds datasets sharing a content (registered
before the duplicate check): the oldest stays covered by the new unique index, the others
become `duplicate_allowed` copies, failed ones are left as they are, and the index then
refuses another covered row of that content."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from app.migrate import upgrade

INSERT = text(
    "INSERT INTO datasets (id, project_id, name, status, format, source, uri, class_names,"
    " splits, fingerprint, size_bytes, info, skipped, warnings, created_at)"
    " VALUES (:id, 'prj_1', :id, :status, 'imagefolder', 'upload', 'u', '[]', '{}', :fp, 0,"
    " '{}', '[]', '[]', CURRENT_TIMESTAMP)"
)


def test_existing_duplicates_become_allowed_copies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0011_score_prompts")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES"
                          " ('prj_1', 'p', CURRENT_TIMESTAMP)"))  # fmt: skip
        for id_, status, fp in (("dst_1", "ready", "a"), ("dst_2", "ready", "a"),
                                ("dst_3", "failed", "a"), ("dst_4", "ready", "b")):  # fmt: skip
            conn.execute(INSERT, {"id": id_, "status": status, "fp": fp})
    upgrade(url)
    with engine.begin() as conn:
        marked = dict(conn.execute(text("SELECT id, duplicate_allowed FROM datasets")).all())
    assert {k: bool(v) for k, v in marked.items()} == {
        "dst_1": False, "dst_2": True, "dst_3": False, "dst_4": False
    }  # fmt: skip
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(INSERT, {"id": "dst_5", "status": "validating", "fp": "a"})
    engine.dispose()
