"""Problems leave out the members that do not apply (never null), wherever the API returns
one: an error response and the 409 problem stored as a failed dataset's `error`; the
OpenAPI document still describes every member. In process, on a migrated SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import session_scope
from app.errors import ConflictError, Problem
from app.main import create_app
from app.models import Dataset, Project

KEY = "test-" + "p" * 40
STANDARD = {"type", "title", "status", "detail"}


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    settings = Settings(data_dir=tmp_path, bootstrap_api_key=KEY, run_maintenance_in_api=False)
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c, app


def _no_nulls(body: Any) -> None:
    if isinstance(body, dict):
        assert None not in body.values(), body
        for value in body.values():
            _no_nulls(value)


def test_a_failed_datasets_problem_has_only_its_members(
    app_client: tuple[TestClient, Any],
) -> None:
    c, app = app_client
    stored = ConflictError("dataset 'a' (dst_a) in this project has the same content").problem()
    with session_scope(app.state.sessionmaker) as session:
        project = session.scalar(select(Project.id))
        session.add(
            Dataset(id="dst_failed", project_id=project, name="copy", status="failed",
                    format="folder", source="upload", uri="datasets/dst_failed",
                    fingerprint="fp", error=stored)
        )  # fmt: skip
    error = c.get("/v1/datasets/dst_failed").json()["error"]
    assert set(error) == STANDARD and error["status"] == 409, error
    (item,) = c.get("/v1/datasets").json()["items"]
    assert set(item["error"]) == STANDARD, item["error"]


def test_error_responses_have_no_null_members(app_client: tuple[TestClient, Any]) -> None:
    c, _ = app_client
    for resp, status, members in (
        (c.get("/v1/datasets/dst_nope"), 404, {"instance"}),
        (c.get("/v1/datasets", params={"limit": 0}), 422, {"instance", "errors"}),
        (c.delete("/v1/models/mdl_nope"), 404, {"instance"}),
    ):
        assert resp.status_code == status, resp.text
        assert set(resp.json()) == STANDARD | members, resp.json()
        _no_nulls(resp.json())
    assert Problem(type="/problems/x", title="t", status=409, detail="d").model_dump() == {
        "type": "/problems/x", "title": "t", "status": 409, "detail": "d",
    }  # fmt: skip


def test_the_schema_still_describes_every_member(app_client: tuple[TestClient, Any]) -> None:
    c, _ = app_client
    schemas = c.get("/openapi.json").json()["components"]["schemas"]
    members = set(schemas["Problem"]["properties"])
    assert members >= STANDARD | {"instance", "errors", "dependents", "score_id", "prompts",
                                  "prompts_hash"}  # fmt: skip
    assert set(schemas["Problem"]["required"]) == STANDARD
