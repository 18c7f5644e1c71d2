"""Project-scoped rows: the one place that turns "not yours" into 404, and a name already
taken in the project into 409."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import ConflictError, NotFoundError

Row = TypeVar("Row")


def get_owned(session: Session, model: type[Row], row_id: str, project_id: str, what: str) -> Row:
    """The row `row_id` of `model` in the caller's project; NotFoundError otherwise.

    Another project's ids answer 404, never 403, so ids leak nothing across tenants. One
    primary-key load (`Session.get`: the identity map, else a cached statement).
    """
    row: Any = session.get(model, row_id)
    if row is None or row.project_id != project_id:
        raise NotFoundError(f"{what} {row_id} not found")
    return row


def add_named(session: Session, row: Row, what: str) -> Row:
    """Add `row` (a row with `name` unique per project) in a savepoint and flush it;
    ConflictError (409) naming it when the project already holds a `what` of that name,
    leaving the session usable."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        name = getattr(row, "name", None)
        raise ConflictError(f"a {what} named {name!r} already exists in this project") from None
    return row
