"""Content negotiation of the read endpoints that have other representations (CSV, SVG)."""

from __future__ import annotations

from typing import Any

CSV = "text/csv"
SVG = "image/svg+xml"


def wants(format: str | None, accept: str | None, name: str, media_type: str) -> bool:
    """Whether a GET asks for the `name` representation: ``?format=`` wins over Accept."""
    return format == name or (format is None and media_type in (accept or ""))


def text_response(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The `responses` entry of an operation that answers one representation (`/csv`,
    `/svg`): its 200 as a string of `media_type`, for clients generated from the document."""
    return {
        200: {"content": {media_type: {"schema": {"type": "string"}}}, "description": description}
    }
