"""Opaque cursors over time-ordered ids."""

from __future__ import annotations

import base64
import binascii

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
