"""The figures' text never overlaps: every <text> of a generated SVG is boxed (its width
from app.svg's conservative estimate, which the first test holds against a real font's
advances; its line box from the baseline, anchor and rotation the SVG states) and no two
boxes may intersect, nor any leave the viewBox. Checked on figures with long and many
dataset names, negative and positive values, and a single row."""

from __future__ import annotations

import math
import re
import string
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.matrices.figures import FLAG_LABEL
from app.predictors.figures import TARGET_LABELS
from app.svg import ASCENT, DESCENT, MID_DOWN, MID_UP, fit_svg, heatmap_svg, text_width

SVG = "{http://www.w3.org/2000/svg}"
Point = tuple[float, float]
FONTS = Path("/usr/share/fonts/truetype/dejavu")

LONG = [
    "imagenet-sketch-with-a-very-long-descriptive-name-v2",
    "WWW MMM wide capitals dataset (all of them)",
    "Stanford Cars 196 — fine-grained",
    "données médicales: rétines 眼底",
    "x",
]


def _names(n: int) -> list[str]:
    return [f"{LONG[k % len(LONG)]} #{k}" if k >= len(LONG) else LONG[k] for k in range(n)]


@pytest.mark.parametrize("font", ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"])
def test_the_width_estimate_is_at_least_a_wide_fonts_advance(font: str) -> None:
    """DejaVu Sans (Linux browsers' sans-serif) is as wide as the common sans-serifs get."""
    from PIL import ImageFont

    path = FONTS / font
    if not path.exists():
        pytest.skip(f"{path} is not installed")
    face = ImageFont.truetype(str(path), 1000)
    bold = "Bold" in font
    chars = string.printable.strip() + " …·—−→⚑ρ²–éü"
    for ch in chars:
        assert text_width(ch, 1000, bold) >= face.getlength(ch), ch
    for text in [*LONG, TARGET_LABELS["gain"], FLAG_LABEL, "-0.05", "G +0.50  OOD -0.123"]:
        assert text_width(text, 12, bold) >= face.getlength(text) * 12 / 1000, text
    ascent, descent = face.getmetrics()
    assert ascent <= ASCENT * 1000 and descent <= DESCENT * 1000


def _inherited(chain: list[ET.Element], name: str, default: str) -> str:
    for el in reversed(chain):
        if el.get(name) is not None:
            return el.get(name)
    return default


def _rotate(p: Point, degrees: float, centre: Point) -> Point:
    a = math.radians(degrees)
    dx, dy = p[0] - centre[0], p[1] - centre[1]
    return (centre[0] + dx * math.cos(a) - dy * math.sin(a),
            centre[1] + dx * math.sin(a) + dy * math.cos(a))  # fmt: skip


def text_boxes(svg: str) -> tuple[list[tuple[str, list[Point]]], tuple[float, ...]]:
    """(shown text, its box's four corners) for every non-empty <text>, and the viewBox."""
    root = ET.fromstring(svg)
    view = tuple(float(v) for v in root.get("viewBox").split())
    out = []

    def walk(el: ET.Element, chain: list[ET.Element], dx: float, dy: float) -> None:
        transform = el.get("transform", "")
        if el.tag == f"{SVG}text":
            assert all(c.tag == f"{SVG}title" for c in el), "only a tooltip inside a text"
            shown = (el.text or "") + "".join(c.tail or "" for c in el)
            if not shown:
                return
            size = float(_inherited([*chain, el], "font-size", "16"))
            weight = _inherited([*chain, el], "font-weight", "normal")
            bold = weight == "bold" or (weight.isdigit() and int(weight) >= 600)
            w = text_width(shown, size, bold)
            x, y = float(el.get("x", "0")), float(el.get("y", "0"))
            x0 = {"start": x, "middle": x - w / 2, "end": x - w}[el.get("text-anchor", "start")]
            baseline = el.get("dominant-baseline", "auto")
            assert baseline in ("auto", "middle"), baseline
            up, down = (MID_UP, MID_DOWN) if baseline == "middle" else (ASCENT, DESCENT)
            corners = [(x0, y - up * size), (x0 + w, y - up * size),
                       (x0 + w, y + down * size), (x0, y + down * size)]  # fmt: skip
            if transform:
                m = re.fullmatch(r"rotate\((-?[\d.]+) (-?[\d.]+) (-?[\d.]+)\)", transform)
                assert m, f"unexpected transform on a text: {transform}"
                angle, cx, cy = map(float, m.groups())
                corners = [_rotate(p, angle, (cx, cy)) for p in corners]
            out.append((shown, [(px + dx, py + dy) for px, py in corners]))
            return
        if transform:
            m = re.fullmatch(r"translate\((-?[\d.]+) (-?[\d.]+)\)", transform)
            assert m, f"unexpected transform on a {el.tag}: {transform}"
            dx, dy = dx + float(m.group(1)), dy + float(m.group(2))
        for child in el:
            walk(child, [*chain, el], dx, dy)

    walk(root, [], 0.0, 0.0)
    return out, view


def _overlap(a: list[Point], b: list[Point], slack: float = 0.01) -> bool:
    """Whether two convex quadrilaterals overlap by more than `slack` px (separating axes)."""
    for poly in (a, b):
        for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
            nx, ny = y1 - y2, x2 - x1
            norm = math.hypot(nx, ny)
            pa = [(nx * x + ny * y) / norm for x, y in a]
            pb = [(nx * x + ny * y) / norm for x, y in b]
            if max(pa) <= min(pb) + slack or max(pb) <= min(pa) + slack:
                return False
    return True


def assert_no_overlap(svg: str) -> int:
    """Asserts every text box is inside the viewBox and meets no other; the number of boxes."""
    boxes, (vx, vy, vw, vh) = text_boxes(svg)
    for shown, corners in boxes:
        for x, y in corners:
            assert vx - 0.01 <= x <= vx + vw + 0.01 and vy - 0.01 <= y <= vy + vh + 0.01, (
                f"{shown!r} leaves the viewBox at ({x:.1f}, {y:.1f})"
            )
    for k, (s1, c1) in enumerate(boxes):
        for s2, c2 in boxes[k + 1 :]:
            assert not _overlap(c1, c2), f"{s1!r} overlaps {s2!r}"
    return len(boxes)


def test_the_checker_sees_overlaps() -> None:
    """The check itself: two texts at one spot, or a turned one over a level one, overlap;
    texts side by side or past a turned one do not."""
    head = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 200 200' font-size='12'>"
    same = head + "<text x='10' y='50'>abc</text><text x='20' y='55'>def</text></svg>"
    with pytest.raises(AssertionError, match="overlaps"):
        assert_no_overlap(same)
    apart = head + "<text x='10' y='50'>abc</text><text x='10' y='70'>def</text></svg>"
    assert assert_no_overlap(apart) == 2
    turned = (head + "<text x='60' y='100' transform='rotate(-90 60 100)'>a long label</text>"
              "<text x='50' y='60'>here</text></svg>")  # fmt: skip
    with pytest.raises(AssertionError, match="overlaps"):
        assert_no_overlap(turned)
    outside = head + "<text x='150' y='50'>far too long to fit</text></svg>"
    with pytest.raises(AssertionError, match="leaves the viewBox"):
        assert_no_overlap(outside)
    grouped = (head + "<g transform='translate(100 0)'><text x='0' y='50'>abc</text></g>"
               "<text x='100' y='50' text-anchor='end'>abc</text></svg>")  # fmt: skip
    assert assert_no_overlap(grouped) == 2  # the group's offset counts


def _scatter(n: int, seed: int, lo: float, hi: float) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(seed)
    xs, ys = rng.uniform(0.05, 0.6, n), rng.uniform(lo, hi, n)
    return [(name, float(x), float(y)) for name, x, y in zip(_names(n), xs, ys, strict=True)]


SCATTERS = [(2, 0.1, 0.9), (5, -0.4, 0.8), (12, -0.05, 0.02), (30, -1.5, 1.0), (40, 0.2, 0.21)]
HEAT_MAPS = [(1, 1, 0.0), (1, 6, -0.4), (4, 5, 0.0), (12, 14, -1.0)]


def scatter_figure(n: int, lo: float, hi: float) -> str:
    """A predictor-like figure of `n` points with y in [lo, hi], long names and labels."""
    points = _scatter(n, n, lo, hi)
    band = [(x, y - 0.2, y + 0.2) for x, y in ((0.0, lo), (0.3, hi), (0.7, hi))]
    return fit_svg(
        points, [(0.05, lo), (0.6, hi)], x_label="iimm (zero-shot, base model) " * 3,
        y_label=TARGET_LABELS["ood_change"], title="OOD change vs iimm · full · " + LONG[0],
        subtitle="fitted 2026-11-29 12:00 UTC · prd_0123456789abcdef" * 2,
        note="n = 30, form: piecewise, R² = -0.123, Spearman ρ = 0.456, LOO RMSE = 0.789",
        band=band, fitted_range=(0.05, 0.6), band_label="95% prediction interval " * 2,
    )  # fmt: skip


@pytest.mark.parametrize(("n", "lo", "hi"), SCATTERS)
def test_scatter_text_does_not_overlap(n: int, lo: float, hi: float) -> None:
    svg = scatter_figure(n, lo, hi)
    assert assert_no_overlap(svg) > n // 3
    root = ET.fromstring(svg)
    named = [c for c in root.iter(f"{SVG}circle") if c.get("data-labelled") == "yes"]
    assert len(named) >= min(n, 5)  # most names find room when there are few points
    cut = [t for t in root.iter(f"{SVG}text") if t.get("class") == "point-name"
           and t.text.endswith("…")]  # fmt: skip
    assert all(t.find(f"{SVG}title").text.startswith(t.text[:-1]) for t in cut)


def _matrix(n_rows: int, names: list[str], seed: int, lo: float = 0.0) -> list[list[float | None]]:
    rng = np.random.default_rng(seed)
    cells: list[list[float | None]] = [
        [float(v) for v in rng.uniform(lo, 1, len(names))] for _ in range(n_rows)
    ]
    cells[0][0] = None
    return cells


def heat_figure(n_rows: int, n_cols: int, lo: float) -> tuple[str, list[str], list[str]]:
    """A matrix-like heat map (values from `lo` to 1, one missing) with long names, notes,
    a flagged row and every key; with its rows and columns."""
    columns = _names(n_cols)
    rows = ["zero-shot", *_names(n_rows - 1)][:n_rows]
    cells = _matrix(n_rows, columns, n_rows + n_cols, lo)
    notes = [""] + [f"G {-0.5 + k / 7:+.2f}  OOD {0.1 - k / 50:+.3f}" for k in range(n_rows - 1)]
    svg = heatmap_svg(
        rows, columns, cells, row_notes=notes, title="Test top-1 accuracy · full · " + LONG[1],
        subtitle="many fine-tuned model(s); G and OOD change (< 0: forgotten) at right",
        row_title="training dataset", column_title="evaluation dataset (test split)",
        highlight=[(i, i - 1) for i in range(1, min(n_rows, n_cols + 1))],
        highlight_label="in-domain: evaluated on its training dataset",
        missing_label="not evaluated (run an evaluate job)", value_label="test top-1 accuracy",
        row_flags=["", *["too small" if k % 3 == 0 else "" for k in range(n_rows - 1)]],
        flag_label=FLAG_LABEL,
    )  # fmt: skip
    return svg, rows, columns


@pytest.mark.parametrize(("n_rows", "n_cols", "lo"), HEAT_MAPS)
def test_heat_map_text_does_not_overlap(n_rows: int, n_cols: int, lo: float) -> None:
    svg, rows, columns = heat_figure(n_rows, n_cols, lo)
    count = assert_no_overlap(svg)
    assert count >= n_rows * (n_cols + 1) + n_cols  # names and values are all drawn
    root = ET.fromstring(svg)
    for t in root.iter(f"{SVG}text"):
        if t.get("class") in ("row", "column") and t.text.endswith("…"):
            full = t.find(f"{SVG}title").text
            assert full in rows + columns and full.startswith(t.text[:-1])


def test_values_equal_but_for_rounding_get_distinct_ticks() -> None:
    svg = fit_svg([("a", 0.1, 0.3), ("b", 0.2, 0.1 + 0.2)], [], x_label="x", y_label="y",
                  title="t")  # fmt: skip
    assert_no_overlap(svg)
    ticks = [t.get("data-value") for t in ET.fromstring(svg).iter(f"{SVG}line")
             if t.get("class") == "ytick"]  # fmt: skip
    assert len(ticks) == len(set(ticks)) >= 2


NAME = st.text(alphabet=st.sampled_from("aim WM-_.0é眼 "), min_size=1, max_size=60)


@settings(max_examples=25, deadline=None)
@given(
    names=st.lists(NAME, min_size=1, max_size=20),
    ys=st.lists(st.floats(-3, 3), min_size=20, max_size=20),
    y_label=NAME,
)
def test_any_scatter_keeps_its_text_apart(names: list[str], ys: list[float], y_label: str) -> None:
    points = [(n, 0.05 * k, y) for k, (n, y) in enumerate(zip(names, ys, strict=False))]
    assert_no_overlap(fit_svg(points, [], x_label=y_label, y_label=y_label, title=y_label,
                              subtitle=y_label, note=y_label))  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(NAME, min_size=1, max_size=6),
    columns=st.lists(NAME, min_size=1, max_size=8),
    value=st.floats(-1, 1),
    title=NAME,
)
def test_any_heat_map_keeps_its_text_apart(
    rows: list[str], columns: list[str], value: float, title: str
) -> None:
    cells = [[value] * len(columns) for _ in rows]
    assert_no_overlap(heatmap_svg(rows, columns, cells, title=title, subtitle=title,
                                  row_notes=rows, row_title=title, column_title=title,
                                  highlight=[(0, 0)], highlight_label=title,
                                  missing_label=title, value_label=title,
                                  row_flags=rows, flag_label=title))  # fmt: skip
