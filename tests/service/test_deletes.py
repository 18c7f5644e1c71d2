"""Deletes on both stacks: refused with the dependents counted, cascaded (rows and files
counted before and after), content-addressed files kept while a live row points to them,
and the orphan sweep after a crash between a delete's commit and its file removal (with
the purge of delivered outbox rows, in the same maintenance pass)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from app.models import Dataset, Embedding, OutboxEntry, Score
from tests.service.stack import ROOT, Stack, make_task, wait_job, zip_dir
from tests.service.test_api import add_tiny, assert_problem, upload


@pytest.fixture(scope="module")
def stack(own_stack: Stack) -> Stack:
    """A stack of this module's own: the orphan sweep and the shared files' removal are
    checked on the whole store, which no other module's content may share."""
    return own_stack


def _db_url(stack: Stack) -> str:
    return stack.env.get("IIMM_DATABASE_URL") or f"sqlite:///{stack.data_dir / 'iimm.db'}"


def _rows(stack: Stack, model: Any, *where: Any) -> int:
    engine = create_engine(_db_url(stack))
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(model).where(*where))
    engine.dispose()
    return int(n or 0)


def _uri(stack: Stack, model: Any, *where: Any) -> str:
    engine = create_engine(_db_url(stack))
    with engine.connect() as conn:
        uri = conn.scalar(select(model.uri).where(*where))
    engine.dispose()
    assert uri, "no such row"
    return str(uri)


def _artifact(stack: Stack, key: str) -> Path:
    return stack.data_dir / "artifacts" / key


def _run(c: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    job = wait_job(c, c.post("/v1/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job
    return job


def _crash_after_commit(stack: Stack, dataset_id: str) -> None:
    """A cascade delete whose process dies after the commit: the rows go, the after-commit
    file removal never runs (`end_session`'s hooks are not called)."""
    from app.artifacts import Storage
    from app.db import make_engine, make_sessionmaker
    from app.deletion import delete_dataset

    engine = make_engine(_db_url(stack))
    session = make_sessionmaker(engine)()
    try:
        row = session.get(Dataset, dataset_id)
        storage = Storage(str(stack.data_dir / "artifacts"))
        delete_dataset(session=session, storage=storage, row=row, cascade=True)
        session.commit()
        assert session.info.get("after_commit")  # the file removal it would have run
    finally:
        session.info.clear()
        session.close()
        engine.dispose()


def test_delete_refused_cascaded_and_orphans_swept(
    stack: Stack, shapes_zip: Path, workdir: Path
) -> None:
    other = workdir / "deletes-other"
    if not other.exists():
        other.mkdir()
        zip_dir(make_task(other / "data", per_class=4, seed=11), other / "o.zip")
    key = stack.new_key("deletes")
    with stack.client(key) as c:
        ds1, ds2 = upload(c, shapes_zip).json(), upload(c, other / "o.zip").json()
        a, b = add_tiny(c), add_tiny(c)  # the same weights: their embeddings share files
        embed = {"type": "embed", "dataset_id": ds1["id"]}
        _run(c, {**embed, "model_id": a["id"]})
        _run(c, {**embed, "model_id": a["id"], "type": "score", "bootstrap": 20})
        _run(c, {**embed, "model_id": b["id"]})
        _run(c, {"type": "embed", "dataset_id": ds2["id"], "model_id": a["id"]})
        shared = _uri(
            stack, Embedding, Embedding.model_id == a["id"], Embedding.dataset_id == ds1["id"]
        )
        assert shared == _uri(stack, Embedding, Embedding.model_id == b["id"])
        own = _uri(stack, Embedding, Embedding.dataset_id == ds2["id"])
        uploads = {d["id"]: _uri(stack, Dataset, Dataset.id == d["id"]) for d in (ds1, ds2)}
        scores = _rows(stack, Score, Score.model_id == a["id"])
        assert scores > 0

        # refused: nothing changes, the dependents are counted by kind
        resp = c.delete(f"/v1/models/{a['id']}")
        assert_problem(resp, 409, "cascade=true")
        assert resp.json()["dependents"] == {"scores": scores, "embeddings": 2}
        resp = c.delete(f"/v1/datasets/{ds1['id']}")
        assert_problem(resp, 409, "cascade=true")
        assert resp.json()["dependents"] == {"scores": scores, "embeddings": 2}
        assert _rows(stack, Embedding, Embedding.model_id == a["id"]) == 2
        assert c.get(f"/v1/models/{a['id']}").status_code == 200

        # cascaded: b's rows go; the files stay while a's embedding points to them
        assert c.delete(f"/v1/models/{b['id']}", params={"cascade": "true"}).status_code == 204
        assert _rows(stack, Embedding, Embedding.model_id == b["id"]) == 0
        assert (_artifact(stack, shared) / "meta.json").is_file()

        # a crash between the commit and the file removal leaves orphans; the sweep takes
        # them and nothing a live row points to
        _crash_after_commit(stack, ds2["id"])
        assert _rows(stack, Embedding, Embedding.dataset_id == ds2["id"]) == 0
        assert _artifact(stack, own).is_dir() and _artifact(stack, uploads[ds2["id"]]).is_dir()
        published = OutboxEntry.published_at.is_not(None)
        assert (_rows(stack, OutboxEntry, published) > 0) == (stack.kind == "production")
        subprocess.run(
            [sys.executable, "-m", "iimm_cli", "maintenance", "--once"],
            env={**stack.env, "IIMM_ORPHAN_MIN_AGE_S": "0", "IIMM_OUTBOX_RETENTION_S": "0"},
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        assert _rows(stack, OutboxEntry, published) == 0  # delivered rows purged
        assert not _artifact(stack, own).exists()
        assert not _artifact(stack, uploads[ds2["id"]]).exists()
        assert (_artifact(stack, shared) / "meta.json").is_file()
        assert _artifact(stack, uploads[ds1["id"]]).is_dir()

        # the last cascade removes rows and files
        assert c.delete(f"/v1/models/{a['id']}", params={"cascade": "true"}).status_code == 204
        assert _rows(stack, Score, Score.model_id == a["id"]) == 0
        assert _rows(stack, Embedding, Embedding.model_id == a["id"]) == 0
        assert not _artifact(stack, shared).exists()
        assert c.delete(f"/v1/datasets/{ds1['id']}").status_code == 204  # nothing depends
        assert not _artifact(stack, uploads[ds1["id"]]).exists()
