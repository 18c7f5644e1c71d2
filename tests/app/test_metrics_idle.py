"""`/metrics` of an idle service, read with prometheus_client's parser: the job gauges an
autoscaler sums are present with 0 for every known queue and job type (an absent series makes
a PromQL sum empty), their HELP says they are cluster-wide, and Starlette's own routes
(`/openapi.json`) are labelled by their path rather than `unmatched`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.jobs.registry import JOB_TYPES
from app.main import create_app
from app.models.jobs import JobStatus


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path, run_maintenance_in_api=False))
    with TestClient(app) as c:
        yield c


def _families(text: str) -> dict[str, tuple[str, list[tuple[dict[str, str], float]]]]:
    return {
        f.name: (f.documentation, [(s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(text)
    }


def test_idle_job_gauges_are_zero_for_every_queue_and_type(client: TestClient) -> None:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    got = _families(resp.text)
    queues = {t.queue for t in JOB_TYPES}
    assert queues == {"cpu", "gpu"}
    for name in ("iimm_queue_depth", "iimm_queue_running"):
        doc, samples = got[name]
        assert {s[0]["queue"]: s[1] for s in samples} == dict.fromkeys(queues, 0.0), name
        assert "cluster-wide" in doc and "max" in doc
    doc, samples = got["iimm_jobs"]
    assert "cluster-wide" in doc
    assert {(s[0]["type"], s[0]["status"]): s[1] for s in samples} == {
        (t.name, st.value): 0.0 for t in JOB_TYPES for st in JobStatus
    }
    assert "cluster-wide" in got["iimm_jobs_running"][0]


def test_starlette_routes_are_labelled_by_their_path(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/no-such-page").status_code == 404
    _, samples = _families(client.get("/metrics").text)["iimm_http_requests"]
    routes = {s[0]["route"] for s in samples if s[0].get("status") in ("200", "404")}
    assert "/openapi.json" in routes
    assert "unmatched" in routes  # a real 404 keeps the catch-all label
