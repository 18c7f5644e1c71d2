"""Bounded request bodies: a pure ASGI middleware (counts bytes even without Content-Length)."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import InvalidError, problem_response


class BodyTooLarge(HTTPException):
    """Raised while reading a body past its limit (an HTTPException so parsers re-raise it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


class BodyLimitMiddleware:
    """Multipart bodies up to `upload_limit` bytes, every other body up to `json_limit`."""

    def __init__(self, app: ASGIApp, *, upload_limit: int, json_limit: int) -> None:
        self.app, self.upload_limit, self.json_limit = app, upload_limit, json_limit

    def _limit(self, scope: Scope) -> int:
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
        # multipart framing adds a little on top of the file itself
        return self.upload_limit + 65536 if ctype.startswith("multipart/") else self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response: Any = problem_response(
            "too-large",
            f"request body is larger than the limit of {limit} bytes",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The multipart form, with parsing errors as 422 (and oversize bodies still 413)."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except BodyTooLarge:
        raise
    except Exception as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        raise InvalidError(f"malformed multipart body: {detail}") from None
