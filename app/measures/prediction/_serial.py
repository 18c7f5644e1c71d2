"""JSON-safe conversion of the fit dataclasses: NaN becomes null and back."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def float_out(value: float) -> float | None:
    """A float for JSON: NaN/inf (undefined quantities) become ``None``."""
    return float(value) if math.isfinite(value) else None


def float_in(value: Any) -> float:
    """Inverse of :func:`float_out`: ``None`` becomes NaN."""
    return math.nan if value is None else float(value)


def check_keys(data: Mapping[str, Any], kind: str, fields: Iterable[str]) -> None:
    """Raise when ``data`` is not a ``to_dict`` of ``kind`` (wrong kind, missing or extra keys)."""
    if data.get("kind", kind) != kind:
        raise ValueError(f"expected a {kind!r} fit, got kind {data.get('kind')!r}")
    wanted = set(fields)
    keys = set(data) - {"kind"}
    if wanted - keys:
        raise ValueError(f"{kind} fit is missing keys: {sorted(wanted - keys)}")
    if keys - wanted:
        raise ValueError(f"{kind} fit has unknown keys: {sorted(keys - wanted)}")
