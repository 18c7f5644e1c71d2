"""Content negotiation of the read endpoints that have other representations (CSV, SVG)."""

from __future__ import annotations

CSV = "text/csv"
SVG = "image/svg+xml"


def wants(format: str | None, accept: str | None, name: str, media_type: str) -> bool:
    """Whether a GET asks for the `name` representation: ``?format=`` wins over Accept."""
    return format == name or (format is None and media_type in (accept or ""))
