"""Opaque cursors over time-ordered ids."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.errors import InvalidError


def encode_cursor(last_id: str) -> str:
    """An opaque cursor pointing after `last_id`."""
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor points after (422 if the cursor is not one of ours)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidError("cursor is not valid; pass the next_cursor of a previous page") from None
    if not raw.isascii() or len(raw) > 40 or "_" not in raw:
        raise InvalidError("cursor is not valid; pass the next_cursor of a previous page")
    return raw


def page(
    session: Session,
    query: Select[Any],
    id_col: Any,
    cursor: str | None,
    limit: int,
    *,
    newest_first: bool = True,
) -> tuple[list[Any], str | None]:
    """One keyset page of `query` ordered by its time-ordered id, and the next cursor (or None).

    Fetches limit + 1 rows to know whether another page follows; never an OFFSET scan.
    """
    if cursor:
        after = decode_cursor(cursor)
        query = query.where(id_col < after if newest_first else id_col > after)
    order = id_col.desc() if newest_first else id_col
    rows = list(session.scalars(query.order_by(order).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None
