"""Schemathesis against the OpenAPI schema (bounded): no 500s, responses match the schema."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service.stack import Stack, embedded_stack  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def schema_stack(workdir: Path) -> Iterator[Stack]:
    """An embedded API without a worker: schemathesis only talks HTTP."""
    stack = embedded_stack(Path(tempfile.mkdtemp(prefix="schema-", dir=workdir)))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def api_schema(schema_stack: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{schema_stack.url}/openapi.json")


def _run_operation(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_openapi_conformance(api_schema: Any, schema_stack: Stack) -> None:
    """Every operation, a few generated requests each (bounded for CI)."""
    headers = {"Authorization": f"Bearer {schema_stack.admin_key}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        _run_operation(operation, headers)
