"""FastAPI dependencies, declared once as `Annotated` aliases."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Collection
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Query, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData

from app.artifacts import Storage
from app.auth.service import Principal, PrincipalCache, authenticate, hash_key
from app.config import Settings
from app.db import end_session, session_ended
from app.errors import UnauthorizedError, UnsupportedMediaTypeError

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


_END_LIMITER: list[anyio.CapacityLimiter] = []


def _end_limiter() -> anyio.CapacityLimiter:
    # Ending a transaction must never wait for a thread held by a request that waits for
    # the database lock this transaction holds: it gets its own, generous limiter.
    if not _END_LIMITER:
        _END_LIMITER.append(anyio.CapacityLimiter(1000))
    return _END_LIMITER[0]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session and one transaction per request: committed after the handler, rolled back
    on error. A plain `def` handler (see `TransactionalRoute`) ends it in its own thread;
    otherwise it ends here, after the handler."""
    state = request.app.state
    reading = request.method in ("GET", "HEAD")
    factory: sessionmaker[Session] = state.read_sessionmaker if reading else state.sessionmaker
    session = factory()
    try:
        yield session
    except BaseException as exc:
        await _end(session, exc)
        raise
    await _end(session, None)


async def _end(session: Session, error: BaseException | None) -> None:
    if session_ended(session):
        return
    if not session.in_transaction():  # never touched the database: nothing to wait for
        end_session(session, error)
        return
    await anyio.to_thread.run_sync(end_session, session, error, limiter=_end_limiter())


async def get_storage(request: Request) -> Storage:
    """The artifact storage."""
    return request.app.state.storage


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": commit before the response is sent, so a 201/202 is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StorageDep = Annotated[Storage, Depends(get_storage)]


async def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
    session: SessionDep,
) -> Principal:
    """The caller's project, from `Authorization: Bearer` or `X-API-Key`.

    Served from the process's `PrincipalCache` (`IIMM_AUTH_CACHE_S`, the bound on how long a
    revoked key keeps working); a miss reads the key in the request's session.
    """
    key = bearer.credentials if bearer is not None else header
    if not key:
        raise UnauthorizedError(
            "missing API key: send `Authorization: Bearer <key>`", headers=_CHALLENGE
        )
    digest = hash_key(key)
    cache: PrincipalCache = request.app.state.principals
    principal = cache.get(digest)
    if principal is None:
        principal = await anyio.to_thread.run_sync(_look_up, session, digest)
        if principal is None:
            raise UnauthorizedError("invalid or revoked API key", headers=_CHALLENGE)
        cache.put(digest, principal)
    return principal


def _look_up(session: Session, digest: str) -> Principal | None:
    try:
        return authenticate(session=session, digest=digest)
    finally:
        # The handler runs in another thread: it starts its own transaction rather than
        # inherit this one (on SQLite, never hold the write lock across a thread hop).
        session.rollback()


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]

JSON, MULTIPART = "application/json", "multipart/form-data"


def media_type(*accepted: str, hint: str = "") -> Any:
    """A route dependency: 415 unless the body's `Content-Type` is one of `accepted`."""

    async def check(request: Request) -> None:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in accepted:
            raise UnsupportedMediaTypeError(
                f"content type {ctype or 'none'!r} not accepted here: send {' or '.join(accepted)}"
                + (f"; {hint}" if hint else "")
            )

    return Depends(check)


def _query_params(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_params(sub)
    return names


def known_form(request: Request, form: FormData, fields: Collection[str]) -> None:
    """422 naming each form field of a multipart body that is not one of `fields` (what the
    operation takes), as `known_query` does for query parameters; a field that is one of the
    operation's query parameters (`allow_duplicate`) is told to be passed as one."""
    unknown = sorted(set(form.keys()) - set(fields))
    if not unknown:
        return
    route = request.scope.get("route")
    query = _query_params(route.dependant) if isinstance(route, APIRoute) else set()
    takes = ", ".join(sorted(fields))
    errors = []
    for name in unknown:
        msg = f"unknown form field; this operation takes the form fields {takes}"
        if name in query:
            value = form.get(name)
            shown = value if isinstance(value, str) and 0 < len(value) <= 40 else "..."
            msg += f"; {name} is a query parameter: pass it as the query parameter ?{name}={shown}"
        errors.append({"loc": ("body", name), "msg": msg, "type": "extra_forbidden"})
    raise RequestValidationError(errors)


async def known_query(request: Request) -> None:
    """A router dependency: 422 naming any query parameter the operation does not take."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _query_params(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": f"unknown parameter; this operation takes {takes}",
                 "type": "extra_forbidden"}
                for name in unknown
            ]
        )  # fmt: skip


KnownQuery = Depends(known_query)


class TransactionalRoute(APIRoute):
    """A route whose plain `def` handler, when it takes the request's `SessionDep`, commits
    (or on error rolls back) that transaction in the handler's own thread, right after it.

    So a request's database work is one thread hop, and a transaction (on SQLite, the write
    lock) is never held while waiting for another thread. Handlers that return ORM rows get
    them with their loaded attributes (sessions keep them after commit).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        name = _session_param(endpoint)
        if name is not None and not inspect.iscoroutinefunction(endpoint):
            endpoint = _ending(endpoint, name)
        super().__init__(path, endpoint, **kwargs)


def _session_param(endpoint: Callable[..., Any]) -> str | None:
    hints = typing.get_type_hints(endpoint, include_extras=True)
    return next((n for n, hint in hints.items() if hint == SessionDep and n != "return"), None)


def _ending(endpoint: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def run(**kwargs: Any) -> Any:
        session: Session = kwargs[name]
        try:
            result = endpoint(**kwargs)
        except BaseException as exc:
            end_session(session, exc)
            raise
        end_session(session, None)
        return result

    return run


#: A page's `cursor`: the `next_cursor` of the page before (see `app.pagination`).
CursorQuery = Annotated[str | None, Query(max_length=100)]
#: A page's size, `limit`: at most 200 items (the default is each route's).
LimitQuery = Annotated[int, Query(ge=1, le=200)]
