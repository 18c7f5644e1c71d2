"""Project-scoped lookups: the one place that turns "not yours" into 404."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from app.errors import NotFoundError

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
