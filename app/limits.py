"""Bounded request bodies: a pure ASGI middleware (counts bytes even without Content-Length)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import InvalidError, problem_response

#: Bytes a multipart body may hold beyond its file (boundaries, part headers, form fields).
MULTIPART_OVERHEAD = 65536


class BodyTooLarge(HTTPException):
    """Raised while reading a body past its limit (an HTTPException so parsers re-raise it);
    `detail` is `too_large_detail`'s."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


def too_large_detail(limit: int, *, multipart: bool, file_limit: int) -> str:
    """Why a body of more than `limit` bytes was refused, naming the setting behind it: a
    multipart body may hold a file of `file_limit` bytes (IIMM_MAX_UPLOAD_BYTES) plus
    `MULTIPART_OVERHEAD`; any other body `limit` bytes (IIMM_MAX_JSON_BYTES)."""
    if multipart:
        return (f"request body is larger than the limit of {limit} bytes: an uploaded file "
                f"may be at most {file_limit} bytes (IIMM_MAX_UPLOAD_BYTES), plus "
                f"{MULTIPART_OVERHEAD} bytes of multipart framing and form fields")  # fmt: skip
    return f"request body is larger than the limit of {limit} bytes (IIMM_MAX_JSON_BYTES)"


class BodyLimitMiddleware:
    """Multipart bodies up to `upload_limit` bytes, every other body up to `json_limit`."""

    def __init__(self, app: ASGIApp, *, upload_limit: int, json_limit: int) -> None:
        self.app, self.upload_limit, self.json_limit = app, upload_limit, json_limit

    def _limit(self, scope: Scope) -> tuple[int, str]:
        """The body limit in bytes for this request, and the 413 detail past it."""
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
        multipart = ctype.startswith("multipart/")
        # multipart framing adds a little on top of the file itself
        limit = self.upload_limit + MULTIPART_OVERHEAD if multipart else self.json_limit
        return limit, too_large_detail(limit, multipart=multipart, file_limit=self.upload_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, detail = self._limit(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, detail)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(detail)
            return message

        await self.app(scope, counted, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        response: Any = problem_response("too-large", detail, instance=scope.get("path"))
        await response(scope, receive, send)


async def read_form(
    request: Request, *, fields: Collection[str], max_files: int, max_fields: int
) -> FormData:
    """The multipart form, with parsing errors as 422 (and oversize bodies still 413), and
    a 422 naming any form field not in `fields` (`app.deps.known_form`)."""
    from app.deps import known_form

    try:
        form = await request.form(max_files=max_files, max_fields=max_fields)
    except BodyTooLarge:
        raise
    except Exception as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        raise InvalidError(f"malformed multipart body: {detail}") from None
    known_form(request, form, fields)
    return form
