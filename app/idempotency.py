"""Idempotent creation: a client's ``Idempotency-Key`` returns the row its first request made.

Shared by every create endpoint whose table has ``project_id``, ``idempotency_key`` (unique
per project) and ``request_hash`` columns. A repeat with the same key and body replays the
stored row; the same key with a different body is refused; two concurrent first requests
race on the unique index and the loser replays the winner's row.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import InvalidError


class Keyed(Protocol):
    """An ORM row created under an idempotency key."""

    project_id: Any
    idempotency_key: Any
    request_hash: Any


RowT = TypeVar("RowT", bound=Keyed)


def request_hash(body: dict[str, Any]) -> str:
    """Canonical hash of a request body, to compare bodies sent with the same key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def replay(
    session: Session, model: type[RowT], project_id: str, key: str | None, digest: str
) -> RowT | None:
    """The row made earlier in the project with ``key`` (None without a key or a row);
    raises InvalidError when that row was made from a different request body."""
    if not key:
        return None
    existing = session.scalar(
        select(model).where(model.project_id == project_id, model.idempotency_key == key)
    )
    if existing is not None and existing.request_hash != digest:
        raise InvalidError("Idempotency-Key was already used with a different request body")
    return existing


def insert_once(session: Session, row: RowT, digest: str) -> tuple[RowT, bool]:
    """Insert ``row`` (its key and hash already set) in a savepoint; (row, True), or the row
    a concurrent request with the same key committed first and False. Without a key there
    is no race to lose: a plain insert, no savepoint."""
    if not row.idempotency_key:
        session.add(row)
        session.flush()
        return row, True
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        existing = replay(session, type(row), row.project_id, row.idempotency_key, digest)
        if existing is None:
            raise
        return existing, False
    return row, True
