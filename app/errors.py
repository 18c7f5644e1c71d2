"""Errors a user can act on, rendered as RFC 9457 `application/problem+json` by one handler."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("iimm.errors")

PROBLEM = "application/problem+json"


KINDS: dict[str, tuple[int, str, str]] = {
    "unauthorized": (401, "Unauthorized", "No API key, or one that is invalid or revoked: send"
                     " `Authorization: Bearer <key>`."),
    "forbidden": (403, "Forbidden", "A path or host outside what the service may read"
                  " (`IIMM_ALLOWED_ROOTS`, `IIMM_ALLOWED_HOSTS`)."),
    "not-found": (404, "Not found", "No such resource in the caller's project (or no such"
                  " endpoint)."),
    "method-not-allowed": (405, "Method not allowed", "The path exists; the method does not."),
    "conflict": (409, "Conflict", "The request clashes with the current state: a name already"
                 " taken, a job already finished, inputs not computed yet (`detail` says which"
                 " job to run first)."),
    "too-large": (413, "Content too large", "The request body or an archive in it is above a"
                  " size limit; `detail` names it."),
    "unsupported-media-type": (415, "Unsupported media type", "The body's `Content-Type` is"
                               " not the one this operation takes; `detail` names the"
                               " operation that takes it."),
    "validation": (422, "Unprocessable content", "The request does not match the operation's"
                   " schema: `errors[]` names each field (`loc`) and what is wrong (`msg`)."),
    "invalid": (422, "Unprocessable content", "The request is well-formed but cannot be used"
                " (an unknown measure, a split the dataset lacks, an unreadable archive);"
                " `detail` says what to change."),
    "internal": (500, "Internal server error", "A bug: the service logged it. Nothing was"
                 " half-written."),
    "unavailable": (503, "Service unavailable", "A dependency (database, broker, storage) is"
                    " unreachable; retry later."),
}  # fmt: skip


def type_uri(kind: str) -> str:
    """The problem `type` of `kind`: a URI reference, resolved against the service's root."""
    return f"/problems/{kind}"


class FieldError(BaseModel):
    """One invalid field: where it is (`loc`, e.g. `["query", "limit"]`) and what is wrong."""

    loc: list[str]
    msg: str
    type: str


def _absent(value: object) -> bool:
    return value is None


class Problem(BaseModel):
    """An RFC 9457 problem document; `type` identifies the kind of error (see `/problems`).

    Members that do not apply to a problem are left out, never sent as null: `instance`
    and the extension members (`errors`, `dependents`, `score_id`, ...) appear only when
    set, wherever a problem is serialised (a response, a failed dataset's `error`)."""

    type: str = Field(examples=["/problems/not-found"])
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path", exclude_if=_absent)
    errors: list[FieldError] | None = Field(
        default=None, description="Invalid fields (422)", exclude_if=_absent
    )
    dependents: dict[str, int] | None = Field(
        default=None,
        exclude_if=_absent,
        description="What a refused delete would remove, counted by kind, with the jobs not"
        " final yet it would cancel (`active_jobs`) (409)",
        examples=[{"finetuned_models": 2, "evaluations": 10, "scores": 4, "active_jobs": 1}],
    )
    active_job_ids: list[str] | None = Field(
        default=None,
        exclude_if=_absent,
        description="The jobs not final yet a refused delete would cancel (409), the first 10 "
        "of `dependents.active_jobs` (the detail says how many more)",
    )
    score_id: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="The stored score a refused `score` job would replace (409): it was "
        "computed with other prompts (`prompts`, `prompts_hash`); pass `replace: true`",
    )
    prompts: list[str] | str | None = Field(
        default=None,
        description="That score's prompts (absent: the default template)",
        exclude_if=_absent,
    )
    prompts_hash: str | None = Field(
        default=None, description="That score's prompts' hash", exclude_if=_absent
    )


class AppError(Exception):
    """Base of every error the service reports to its caller."""

    status: int = 400
    title: str = "Bad request"
    kind: str = "invalid"

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.errors = errors
        self.extensions = extensions or {}

    def problem(self) -> dict[str, Any]:
        """This error as a stored problem document (`Problem`'s fields, without `instance`),
        e.g. the `error` of a dataset whose ingest job found it."""
        return problem_body(self.kind, self.detail, status=self.status)


class NotFoundError(AppError):
    status, title, kind = 404, "Not found", "not-found"


class UnauthorizedError(AppError):
    status, title, kind = 401, "Unauthorized", "unauthorized"


class ForbiddenError(AppError):
    status, title, kind = 403, "Forbidden", "forbidden"


class ConflictError(AppError):
    status, title, kind = 409, "Conflict", "conflict"


class InvalidError(AppError):
    status, title, kind = 422, "Unprocessable content", "invalid"


class TooLargeError(AppError):
    status, title, kind = 413, "Content too large", "too-large"


class UnsupportedMediaTypeError(AppError):
    status, title, kind = 415, "Unsupported media type", "unsupported-media-type"


class UnavailableError(AppError):
    status, title, kind = 503, "Service unavailable", "unavailable"


def problem_body(kind: str, detail: str, *, status: int | None = None) -> dict[str, Any]:
    """A problem document of `kind` (a key of `KINDS`) as a plain dict: type, title, status,
    detail."""
    code, title, _ = KINDS[kind]
    return {"type": type_uri(kind), "title": title, "status": status or code, "detail": detail}


def problem_response(
    kind: str,
    detail: str,
    *,
    status: int | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response of `kind` (a key of `KINDS`); `extensions` are members of
    the `Problem` schema beyond the standard ones (RFC 9457 section 3.2)."""
    code, title, _ = KINDS[kind]
    body = Problem(
        type=type_uri(kind),
        title=title,
        status=status or code,
        detail=detail,
        instance=instance,
        errors=[FieldError.model_validate(e) for e in errors] if errors else None,
        **(extensions or {}),
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status or code,
        headers=headers,
        media_type=PROBLEM,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e["type"]}
        for e in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Render every error (ours, HTTP, validation, unexpected) as problem+json."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem_response(
            exc.kind, exc.detail, status=exc.status, instance=request.url.path,
            headers=exc.headers, errors=exc.errors, extensions=exc.extensions,
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code, "invalid")
        detail = exc.detail if isinstance(exc.detail, str) else KINDS[kind][1]
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such endpoint; see /docs for the API"
        return problem_response(
            kind, detail, status=exc.status_code, instance=request.url.path, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc'])}: {first['msg']}" if first["loc"] else first["msg"]
        return problem_response("validation", detail, instance=request.url.path, errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(
            "internal", "an unexpected error occurred", instance=request.url.path
        )


_HTTP_KINDS = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 401: "unauthorized"}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of the error statuses an operation can return besides 401 and 422.

    Every error response is declared as `application/problem+json` with the `Problem`
    schema (`app.openapi` adds 401 and 422 to every authenticated operation).
    """
    return {code: {"model": Problem, "description": DESCRIPTIONS[code]} for code in codes}


DESCRIPTIONS = {code: text for code, _, text in KINDS.values()} | {
    404: "Not found in the caller's project",
    422: "Invalid request: `errors[]` names the fields",
}
