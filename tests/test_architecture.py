"""The architecture's boundaries, as import-linter contracts (`[tool.importlinter]` in
pyproject.toml): no import cycles, the API never imports the workers (nor torch), nothing
imports the CLI, the pure libraries import no service machinery, and app's layers."""

from __future__ import annotations

import subprocess
import sys

from tests.service.stack import ROOT

LINT = (
    "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
)


def test_import_contracts_are_kept() -> None:
    run = subprocess.run(
        [sys.executable, "-c", LINT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " 0 broken." in run.stdout.split("Contracts:")[-1].splitlines()[0], run.stdout[-2000:]
