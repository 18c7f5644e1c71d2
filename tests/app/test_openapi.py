"""The OpenAPI document as a client generator reads it (no server needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.openapi import TAGS

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_operation_ids_are_short_unique_snake_case(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for op_id in ids:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", op_id), op_id
        assert len(op_id) <= 32, op_id
    assert {"list_datasets", "get_job", "cancel_job", "create_job", "create_prediction"} <= set(ids)


def test_every_operation_has_one_declared_tag(document: dict[str, Any]) -> None:
    declared = {t["name"] for t in TAGS}
    assert [t["name"] for t in document["tags"]] == [t["name"] for t in TAGS]
    for method, path, op in operations(document):
        assert len(op["tags"]) == 1 and op["tags"][0] in declared, (method, path, op["tags"])


def test_errors_are_declared_as_problems_only(document: dict[str, Any]) -> None:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(
        schemas["Problem"]["properties"]
    )
    assert set(schemas["FieldError"]["required"]) == {"loc", "msg", "type"}
    for method, path, op in operations(document):
        responses = op["responses"]
        if "security" in op:
            assert {"401", "422"} <= set(responses), (method, path)
        if "requestBody" in op:
            assert "413" in responses, (method, path)
        for code, response in responses.items():
            if int(code) >= 400 and path != "/readyz":
                assert response["content"] == problem, (method, path, code)


def test_one_request_body_type_per_operation(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        if "requestBody" in op:
            assert len(op["requestBody"]["content"]) == 1, (method, path)
    upload = document["paths"]["/v1/datasets:upload"]["post"]["requestBody"]["content"]
    name = upload["multipart/form-data"]["schema"]["properties"]["name"]
    ref = document["components"]["schemas"]["DatasetRef"]["properties"]["name"]
    assert name["pattern"] == ref["pattern"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_work_offline(page: str) -> None:
    """The pages name no other host; every script, style and icon they load is served."""
    client = TestClient(create_app())  # no lifespan: the pages need no database
    html = client.get(page)
    assert html.status_code == 200 and "/openapi.json" in html.text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html.text)
    urls += re.findall(r"""(?:url|Url)\s*:\s*["']([^"']+)["']""", html.text)
    assert not re.search(r"https?://", html.text), re.findall(r"https?://[^\s\"']+", html.text)
    assets = [u for u in urls if u.startswith("/docs/assets/")]
    assert len(assets) >= (3 if page == "/docs" else 2), urls
    for url in assets:
        resp = client.get(url)
        assert resp.status_code == 200 and len(resp.content) > 1000, url


def test_problem_pages_render_code_not_backticks() -> None:
    """A problem `type` dereferenced is HTML: inline code as <code>, nothing left as markdown,
    the rest escaped."""
    from app.errors import KINDS

    client = TestClient(create_app())
    page = client.get("/problems/forbidden")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<code>IIMM_ALLOWED_ROOTS</code>" in page.text and "`" not in page.text
    listing = client.get("/problems").text
    assert "`" not in listing and "<code>loc</code>" in listing
    assert all(f'<section id="{kind}">' in listing for kind in KINDS)


def test_jobs_are_typed_per_job_type(document: dict[str, Any]) -> None:
    """`JobRead.params` and `.result` are unions discriminated on `type`, one member per type;
    every public job type declares its result model (internal ones may stay open)."""
    from app.jobs import registry

    names = {t.name for t in registry.all_types()}
    job = document["components"]["schemas"]["JobRead"]["properties"]
    assert set(job["type"]["enum"]) == names
    params = job["params"]["discriminator"]["mapping"]
    result = next(s for s in job["result"]["anyOf"] if "discriminator" in s)
    assert set(params) == set(result["discriminator"]["mapping"]) == names
    for job_type in registry.all_types(public_only=True):
        assert job_type.result is not None, f"{job_type.name} declares no result model"
        fields = job_type.result.model_fields
        assert fields["type"].default == job_type.name


def test_embed_result_parts_are_declared_models(document: dict[str, Any]) -> None:
    """`EmbedResult.zero_shot` and `.timing` are named schemas with their figures as typed
    properties (extra keys allowed), not open dicts."""
    schemas = document["components"]["schemas"]
    props = schemas["EmbedResult"]["properties"]
    assert props["zero_shot"] == {"$ref": "#/components/schemas/ZeroShotAccuracy"}
    timing_refs = [s.get("$ref") for s in props["timing"]["anyOf"]]
    assert "#/components/schemas/EmbedTiming" in timing_refs
    zero_shot = schemas["ZeroShotAccuracy"]["properties"]
    assert {"top1", "top5", "mean_per_class_recall"} <= set(zero_shot)
    timing = schemas["EmbedTiming"]
    assert set(timing["required"]) == {"images", "seconds", "images_per_second"}
    expected = {"images": "integer", "seconds": "number", "images_per_second": "number",
                "workers": "integer", "device": "string", "loader_s": "number",
                "submit_s": "number", "device_s": "number", "store_s": "number"}  # fmt: skip
    for name, kind in expected.items():
        declared = timing["properties"][name]
        kinds = {declared.get("type"), *(s.get("type") for s in declared.get("anyOf", []))}
        assert kind in kinds, (name, declared)
    for name in ("ZeroShotAccuracy", "EmbedTiming"):
        assert schemas[name].get("additionalProperties", True) is True, name


def test_dataset_creation_is_accepted_with_its_ingest_job(document: dict[str, Any]) -> None:
    """Uploads and references answer 202 with the `validating` dataset (its `job_id`, the
    `error` a failed one carries) and document the ingest job; no 201 is left."""
    schemas = document["components"]["schemas"]
    for path in ("/v1/datasets", "/v1/datasets:upload"):
        responses = document["paths"][path]["post"]["responses"]
        assert "201" not in responses and "ingest job" in responses["202"]["description"]
        body = responses["202"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/DatasetRead"}
        assert {"409", "413", "415"} <= set(responses)
    read = schemas["DatasetRead"]["properties"]
    assert read["status"]["enum"] == ["validating", "ready", "registered", "failed"]
    assert {"job_id", "error", "links"} <= set(read)
    problem = {"$ref": "#/components/schemas/Problem"}
    assert problem in read["error"]["anyOf"]


def test_dataset_and_level_query_parameters_are_described(document: dict[str, Any]) -> None:
    """`dataset_id` and `level` say what they are wherever they are query parameters (the
    rankings' from `app.openapi.QUERY_DOCS`)."""
    seen = []
    for _, path, op in operations(document):
        for param in op.get("parameters", []):
            if param["in"] == "query" and param["name"] in ("dataset_id", "level"):
                seen.append((path, param["name"]))
                assert len(param.get("description") or "") > 20, (path, param)
    expected = {("/v1/rankings", "dataset_id"), ("/v1/rankings", "level"),
                ("/v1/scores", "dataset_id"), ("/v1/evaluations", "dataset_id")}  # fmt: skip
    assert expected <= set(seen)
