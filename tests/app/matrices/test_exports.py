"""The accuracy matrix's exports (CSV, SVG heat map, the CLI's table) say why a row is
flagged, on a hand-made matrix (no database)."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

from app.matrices.arithmetic import low_error_flag
from app.matrices.figures import FLAG_LABEL, matrix_svg
from app.matrices.router import to_csv, to_read
from app.matrices.service import Matrix, MatrixRow
from iimm_cli.matrices import format_table

NS = {"s": "http://www.w3.org/2000/svg"}
WHY = low_error_flag(0.98, 0.05)


def _matrix() -> Matrix:
    assert WHY is not None and "'" not in WHY  # the SVG attribute is checked verbatim below
    rows = [
        MatrixRow("a", "ftm_1", {"a": 0.9, "b": 0.2}, 0.8, -0.1),
        MatrixRow("b", "ftm_2", {"a": 0.3, "b": 0.99}, 0.5, -0.2, flag=WHY),
    ]
    names = {"a": "letters", "b": "colours"}
    return Matrix("mdl_1", "full", ["a", "b"], {"a": 0.5, "b": 0.98}, rows, names)


def test_csv_has_a_flag_column_with_the_reason() -> None:
    lines = list(csv.reader(io.StringIO(to_csv(_matrix()))))
    assert lines[0] == ["train_dataset", "finetuned_model_id", "letters", "colours", "gain",
                        "ood_change", "flag"]  # fmt: skip
    assert lines[1] == ["zero-shot", "", "0.5", "0.98", "", "", ""]
    assert lines[2][0] == "letters" and lines[2][-1] == ""
    assert lines[3][0] == "colours" and lines[3][-1] == WHY
    assert float(lines[3][-3]) == 0.5 and float(lines[3][-2]) == -0.2


def test_json_carries_the_same_flag() -> None:
    rows = to_read(_matrix()).rows
    assert [r.flag for r in rows] == [None, WHY]


def test_heat_map_marks_the_flagged_row_with_its_reason() -> None:
    root = ET.fromstring(matrix_svg(_matrix(), "reference"))
    marks = root.findall(".//s:text[@class='row-flag']", NS)
    assert [(m.get("data-row"), m.get("data-flag")) for m in marks] == [("2", WHY)]
    (tip,) = marks[0].findall("s:title", NS)
    assert tip.text == WHY
    keys = [t.text for t in root.findall(".//s:text[@class='flag-key']", NS)]
    assert keys == [FLAG_LABEL]
    unflagged = Matrix("mdl_1", "full", ["a"], {"a": 0.5}, [_matrix().rows[0]], {"a": "x"})
    clean = ET.fromstring(matrix_svg(unflagged, "reference"))
    assert clean.findall(".//s:text[@class='row-flag']", NS) == []
    assert clean.findall(".//s:text[@class='flag-key']", NS) == []


def test_cli_table_marks_the_flagged_row_and_prints_why() -> None:
    doc = to_read(_matrix()).model_dump(mode="json")
    lines = format_table(doc).splitlines()
    colours = next(line for line in lines if line.startswith("colours"))
    letters = next(line for line in lines if line.startswith("letters"))
    assert "0.5000*" in colours and "*" not in letters
    assert lines[-1] == f"* colours: {WHY}"
