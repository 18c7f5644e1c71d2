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


def test_level_options_say_what_they_are() -> None:
    from iimm_cli import build_parser

    parser = build_parser()
    for argv in (["rankings"], ["predictors", "predict"]):
        sub = parser
        for name in argv:
            action = next(a for a in sub._actions if getattr(a, "choices", None)
                          and name in a.choices)  # fmt: skip
            sub = action.choices[name]
        (level,) = [a for a in sub._actions if "--level" in a.option_strings]
        assert level.help and "prediction interval" in level.help, argv
        assert "%" in level.help % {"default": level.default}  # argparse's own formatting
