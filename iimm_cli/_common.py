"""Helpers shared by the CLI commands."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


class CliError(Exception):
    """A user error: printed to stderr as one line, exit code 2, no traceback."""


def print_json(obj: Any) -> None:
    """Print `obj` as JSON (NaN/inf become null, which JSON can carry)."""
    print(json.dumps(_finite(obj), indent=2, sort_keys=True))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def print_table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> None:
    """Print rows as an aligned plain-text table (the last column is not padded)."""
    cols = list(zip(headers, *rows, strict=False)) if rows else [(h,) for h in headers]
    widths = [max(len(v) for v in col) for col in cols[:-1]]
    rule = [max(len(headers[-1]), 10)]

    def line(values: tuple[str, ...] | list[str]) -> str:
        cells = [f"{v:<{w}}" for v, w in zip(values, widths, strict=False)]
        return "  ".join([*cells, values[-1]]).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths + rule]))
    for row in rows:
        print(line(row))
