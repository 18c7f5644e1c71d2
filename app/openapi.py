"""The OpenAPI document: short operation ids, one tag per resource, errors as `Problem`."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.staticfiles import StaticFiles

from app.errors import DESCRIPTIONS, KINDS, PROBLEM, NotFoundError, Problem, type_uri

TAGS: list[dict[str, Any]] = [
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "datasets", "description": "Image-classification datasets: uploads and references."},
    {"name": "models", "description": "Base models (open_clip architectures and weights)."},
    {"name": "jobs", "description": "Long-running work: embed, score, fine-tune, evaluate, ..."},
    {"name": "scores", "description": "Measures stored by `score` jobs."},
    {"name": "measures", "description": "Measures of embeddings the caller already has."},
    {"name": "finetuned-models", "description": "Models produced by `finetune` jobs."},
    {"name": "evaluations", "description": "Accuracies measured by `evaluate` jobs."},
    {"name": "matrices", "description": "Accuracy matrices: trained-on × evaluated-on."},
    {
        "name": "predictors",
        "description": "Fitted predictors of fine-tuning gain, and their predictions.",
    },
    {"name": "comparisons", "description": "Which measure predicts fine-tuning best."},
    {"name": "rankings", "description": "Which base model and method to pick for a dataset."},
    {"name": "webhooks", "description": "Endpoints that receive job events, and deliveries."},
]


def operation_id(route: APIRoute) -> str:
    """The route function's name (`list_datasets`, `create_job`): short and stable."""
    return route.name


def _problem_components(schema: dict[str, Any]) -> dict[str, Any]:
    """Add `Problem` (and `FieldError`) to the components; drop FastAPI's validation schemas."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    return {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _declare_problems(schema: dict[str, Any]) -> None:
    """Every error response as `application/problem+json` `Problem`, nothing else.

    Authenticated operations can answer 401 and 422 (schema validation, unknown query
    parameters); operations with a body can answer 413 (the body limit middleware).
    """
    content = _problem_components(schema)
    for item in schema.get("paths", {}).values():
        for op in item.values():
            responses = op.get("responses", {})
            if "security" in op:
                responses.setdefault("401", {"description": DESCRIPTIONS[401]})
                responses.setdefault("422", {})
            if "requestBody" in op:
                responses.setdefault("413", {"description": DESCRIPTIONS[413]})
            for code, response in responses.items():
                if int(code) >= 400 and not _other_model(response):
                    response["content"] = content
                    if code == "422" or not response.get("description"):
                        response["description"] = DESCRIPTIONS[int(code)]
            op["responses"] = dict(sorted(responses.items()))


def _other_model(response: dict[str, Any]) -> bool:
    """A declared error body that is not a problem (e.g. `/readyz`'s 503 `Readiness`)."""
    refs = [c.get("schema", {}).get("$ref", "") for c in response.get("content", {}).values()]
    known = ("", "#/components/schemas/Problem", "#/components/schemas/HTTPValidationError")
    return any(ref not in known for ref in refs)


pages = APIRouter(include_in_schema=False)

# Swagger UI and ReDoc from the files the fastapi-offline package ships: /docs works offline.
ASSETS = "/docs/assets"


@pages.get("/docs")
def swagger_ui() -> HTMLResponse:
    """Swagger UI over `/openapi.json`, its scripts and styles served by the app."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="IIMM service: API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )


@pages.get("/redoc")
def redoc() -> HTMLResponse:
    """ReDoc over `/openapi.json`, its script served by the app (no web fonts)."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="IIMM service: API",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS}/favicon.png",
        with_google_fonts=False,
    )


def _inline_html(text: str) -> str:
    """The problem texts' inline markdown (`code` spans) as HTML; everything else escaped."""
    from markdown_it import MarkdownIt

    return MarkdownIt("zero").enable("backticks").renderInline(text)


def _kind_html(kind: str) -> str:
    status, title, text = KINDS[kind]
    return (
        f'<section id="{kind}"><h2>{status} {escape(title)}: <code>{type_uri(kind)}</code></h2>'
        f"<p>{_inline_html(text)}</p></section>"
    )


@pages.get("/problems")
def list_problem_types() -> HTMLResponse:
    """Every problem `type` the service answers with, and what it means."""
    body = "".join(_kind_html(kind) for kind in KINDS)
    return HTMLResponse(f"<!doctype html><title>Problem types</title><h1>Problem types</h1>{body}")


@pages.get("/problems/{kind}")
def get_problem_type(kind: str) -> HTMLResponse:
    """One problem `type`: what it means and what to do (the `type` URI dereferenced)."""
    if kind not in KINDS:
        raise NotFoundError(f"no problem type {kind!r}; see /problems")
    return HTMLResponse(f"<!doctype html><title>{escape(KINDS[kind][1])}</title>{_kind_html(kind)}")


#: Descriptions of query parameters whose operation's code gives none, by (operation id,
#: parameter name): `/v1/rankings` is documented here while its code changes elsewhere.
QUERY_DOCS: dict[tuple[str, str], str] = {
    ("rank_models", "dataset_id"): "The dataset (`dst_…`) to rank the project's base models"
    " and methods for: its stored zero-shot scores are the predictors' features.",
    ("rank_models", "level"): "The level of the prediction intervals, in (0, 1): 0.95 gives"
    " 95% intervals.",
}


def _describe_query(schema: dict[str, Any]) -> None:
    """Give the query parameters of `QUERY_DOCS` their description (never replacing one)."""
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                doc = QUERY_DOCS.get((op.get("operationId", ""), param.get("name", "")))
                if param.get("in") == "query" and doc and not param.get("description"):
                    param["description"] = doc


def install_openapi(app: FastAPI) -> None:
    """Build the document once, with the error responses rewritten by `_declare_problems`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _declare_problems(schema)
            _describe_query(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(pages)
    app.mount(ASSETS, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"))
