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


def print_table(rows: list[tuple[str, str]], headers: tuple[str, str]) -> None:
    """Print two-column rows as an aligned plain-text table."""
    width = max(len(headers[0]), *(len(r[0]) for r in rows)) if rows else len(headers[0])
    print(f"{headers[0]:<{width}}  {headers[1]}")
    print(f"{'-' * width}  {'-' * max(len(headers[1]), 10)}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
