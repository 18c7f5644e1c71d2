"""Schemathesis against the OpenAPI schema (bounded): no 500s, responses match the schema."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.errors import KINDS  # noqa: E402
from tests.service.stack import TINY, Stack, embedded_stack, ingested  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def schema_stack(workdir: Path) -> Iterator[Stack]:
    """An embedded API without a worker: schemathesis only talks HTTP."""
    stack = embedded_stack(Path(tempfile.mkdtemp(prefix="schema-", dir=workdir)))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def api_schema(schema_stack: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{schema_stack.url}/openapi.json")


def _run_operation(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_openapi_conformance(api_schema: Any, schema_stack: Stack) -> None:
    """Every operation, a few generated requests each (bounded for CI)."""
    headers = {"Authorization": f"Bearer {schema_stack.admin_key}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        _run_operation(operation, headers)


def test_problem_types_and_unknown_query(schema_stack: Stack) -> None:
    """Errors carry a `type` URI that the service documents, and the request path."""
    with schema_stack.client() as c:
        missing = c.get("/v1/jobs/job_nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["type"] == "/problems/not-found"
        assert missing.json()["instance"] == "/v1/jobs/job_nope"
        unknown = c.get("/v1/jobs", params={"type": "embed", "limit": 2})
        assert unknown.status_code == 422, unknown.text
        body = unknown.json()
        assert (
            body["type"] == "/problems/validation"
            and "cursor, limit, parent_id, status" in body["detail"]
        )
        assert [e["loc"] for e in body["errors"]] == [["query", "type"]]
        bad = c.get("/v1/jobs", params={"limit": 0}).json()
        assert bad["type"] == "/problems/validation" and bad["errors"][0]["loc"] == [
            "query",
            "limit",
        ]
        page = c.get(missing.json()["type"])
        assert page.status_code == 200 and "Not found" in page.text
        index = c.get("/problems").text
        for kind in KINDS:
            assert f"/problems/{kind}" in index
        assert c.get("/problems/teleport").status_code == 404


def test_validation_at_submission(schema_stack: Stack, shapes_zip: Path) -> None:
    """A split the dataset lacks and an unknown method: 422 naming the field and the values."""
    schema_stack.start_worker(queues=("cpu",))  # for the upload's ingest job only
    try:
        with schema_stack.client() as c, shapes_zip.open("rb") as fh:
            resp = c.post("/v1/datasets:upload", data={"name": "sub"}, files={"file": fh})
            ds = ingested(c, resp).json()
    finally:
        schema_stack.kill_workers()
    with schema_stack.client() as c:
        model = c.post(
            "/v1/models", json={"name": "sub", "arch": TINY, "pretrained": "random"}
        ).json()
        body = {"type": "embed", "model_id": model["id"], "dataset_id": ds["id"]}
        resp = c.post("/v1/jobs", json={**body, "split": "validation"})
        assert resp.status_code == 422, resp.text
        problem = resp.json()
        splits = sorted(ds["splits"])
        assert "test" in splits and "validation" not in splits
        assert "'validation'" in problem["detail"] and str(splits) in problem["detail"]
        msg = f"no such split; allowed: {', '.join(splits)}"
        assert problem["errors"] == [{"loc": ["body", "split"], "msg": msg, "type": "enum"}]
        queued = [j["type"] for j in c.get("/v1/jobs").json()["items"]]
        assert "ingest" in queued and set(queued) == {"ingest"}  # no job but uploads' ingests
        bad = c.get("/v1/comparisons", params={"base_model_id": model["id"], "method": "dora"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "method"]
        assert "'full'" in bad.json()["errors"][0]["msg"] and "'lora'" in bad.json()["detail"]
