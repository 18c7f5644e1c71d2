"""Building the `iimm` parser stays cheap: every command (and every test that runs one as a
process) builds it before it does anything."""

from __future__ import annotations

import subprocess
import sys

from tests.service.stack import ROOT


def test_building_the_parser_imports_neither_torch_nor_sqlalchemy() -> None:
    code = (
        "import sys, iimm_cli; iimm_cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'open_clip', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
